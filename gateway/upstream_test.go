package gateway

import "testing"

func TestBufferPool(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != proxyBufSize || cap(b) != proxyBufSize {
		t.Fatalf("Get: len %d cap %d, want %d", len(b), cap(b), proxyBufSize)
	}
	p.Put(b[:10])           // a resliced buffer of ours goes back whole
	p.Put(make([]byte, 10)) // a foreign size is dropped, not a panic
	if b := p.Get(); len(b) != proxyBufSize {
		t.Fatalf("Get after Put: len %d", len(b))
	}
	if n := testing.AllocsPerRun(100, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get+Put allocates %v times, want 0", n)
	}
}
