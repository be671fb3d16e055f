package blobsink

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/wardgate/wardgate/telemetry"
)

// s3Opener opens s3:// URLs as gocloud's s3blob.URLOpener does (same
// parameters, same defaults), with one difference: the SDK's HTTP
// connections are dialled without pprof labels.
//
// Why: the job queue's workers store batches under the pprof labels of the
// batch (trace_id, span_id), and net/http starts a keep-alive connection's
// readLoop/writeLoop goroutines from the goroutine that dialled it, which
// inherits the labels of the worker. Without this, the S3 connections keep
// the trace_id of the batch that opened them for as long as they live, and
// goroutine profiles and `diag analyze` list idle connections under a
// trace that ended long ago. s3blob.URLOpener builds its S3 client inside
// and takes no HTTP client, hence this copy of its URL handling.
type s3Opener struct{}

// OpenBucketURL implements blob.BucketURLOpener.
func (s3Opener) OpenBucketURL(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	q := u.Query()
	var bopts s3blob.Options
	var sopts []func(*s3.Options)
	boolParam := func(key string, set func(bool)) error {
		v := q.Get(key)
		if v == "" {
			return nil
		}
		q.Del(key)
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value for %q: %w", key, err)
		}
		set(b)
		return nil
	}
	if v := q.Get("ssetype"); v != "" {
		q.Del("ssetype")
		var known bool
		for _, t := range bopts.EncryptionType.Values() {
			if strings.EqualFold(string(t), v) {
				bopts.EncryptionType, known = t, true
			}
		}
		if !known {
			return nil, fmt.Errorf("%q is not a valid value for %q", v, "ssetype")
		}
	}
	if v := q.Get("kmskeyid"); v != "" {
		q.Del("kmskeyid")
		bopts.KMSEncryptionID = v
	}
	for key, set := range map[string]func(bool){
		"accelerate":       func(b bool) { sopts = append(sopts, func(o *s3.Options) { o.UseAccelerate = b }) },
		"disable_https":    func(b bool) { sopts = append(sopts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = b }) },
		"use_path_style":   func(b bool) { sopts = append(sopts, func(o *s3.Options) { o.UsePathStyle = b }) },
		"s3ForcePathStyle": func(b bool) { sopts = append(sopts, func(o *s3.Options) { o.UsePathStyle = b }) },
	} {
		if err := boolParam(key, set); err != nil {
			return nil, err
		}
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("open bucket %v: %w", u, err)
	}
	// Frozen, so the SDK's defaults mode cannot rebuild the transport
	// and drop the dialer.
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.DialContext = telemetry.UnlabeledDial(tr.DialContext)
	}).Freeze()
	bopts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, sopts...), u.Host, &bopts)
}
