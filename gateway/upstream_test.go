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
}

// BenchmarkBufferPool shows 0 allocs/op for a Get and Put (sync.Pool drops
// items at random under -race, so this is not a test).
func BenchmarkBufferPool(b *testing.B) {
	p := newBufferPool()
	b.ReportAllocs()
	for b.Loop() {
		p.Put(p.Get())
	}
}
