//go:build !(linux && amd64)

package capture

import (
	"context"
	"fmt"
	"runtime"
)

func captureNative(context.Context, int, string, *Meta) error {
	return fmt.Errorf("capture: the native capturer supports linux/amd64 only, not %s/%s; use --method gcore", runtime.GOOS, runtime.GOARCH)
}
