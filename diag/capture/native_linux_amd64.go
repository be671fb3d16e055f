package capture

import (
	"context"
	"errors"
)

func captureNative(context.Context, int, string, *Meta) error {
	return errors.New("capture: native capturer not built yet")
}
