//go:build !(linux && amd64)

package capture

import (
	"context"
	"fmt"
	"runtime"
)

type nativeOptions struct {
	pid        int
	preCopy    bool
	noTracking string
	inStop     func(tids []int) error
}

func captureNative(context.Context, nativeOptions, string, *Meta) (*NativeStats, error) {
	return nil, fmt.Errorf("capture: the native capturer supports linux/amd64 only, not %s/%s; use --method gcore", runtime.GOOS, runtime.GOARCH)
}
