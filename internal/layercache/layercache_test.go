package layercache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func raw(b []byte) Encode { return func() ([]byte, error) { return b, nil } }

func asBytes(b []byte) (any, error) { return b, nil }

func get(c *Cache, key string) ([]byte, bool) {
	v, ok := c.Get(key, asBytes)
	if !ok {
		return nil, false
	}
	return v.([]byte), true
}

func put(c *Cache, key string, data []byte) { c.Put(key, data, int64(len(data)), raw(data)) }

func TestDiskRoundTripAndCorruption(t *testing.T) {
	dir := t.TempDir()
	c, err := New(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("layer"), 1000)
	put(c, "k", data)

	// a fresh process sees the entry on disk
	fresh := func() *Cache {
		c, err := New(dir, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got, ok := get(fresh(), "k"); !ok || !bytes.Equal(got, data) {
		t.Fatalf("fresh cache: ok=%v, %d bytes", ok, len(got))
	}

	f := c.file("k")
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated":   raw[:len(raw)-10],
		"bit flipped": append(append([]byte(nil), raw[:len(raw)-1]...), raw[len(raw)-1]^1),
		"empty":       nil,
		"other key":   encodeEntry("other", data),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(f, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, ok := get(fresh(), "k"); ok {
				t.Fatal("a corrupt entry was returned")
			}
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("the corrupt entry was not removed: %v", err)
			}
		})
	}
}

func TestDiskBoundEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	entry := int64(len(encodeEntry("k0", make([]byte, 1000))))
	c, err := New(dir, 1, 5*entry) // memory too small to hold anything: disk only
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i := range 5 {
		put(c, fmt.Sprint("k", i), make([]byte, 1000))
		_ = os.Chtimes(c.file(fmt.Sprint("k", i)), old.Add(time.Duration(i)*time.Minute), old.Add(time.Duration(i)*time.Minute))
	}
	if _, ok := get(c, "k0"); !ok { // k0 becomes the most recently used
		t.Fatal("k0 missing before eviction")
	}
	put(c, "k5", make([]byte, 1000))
	if c.DiskBytes() > 5*entry {
		t.Errorf("disk holds %d bytes, bound %d", c.DiskBytes(), 5*entry)
	}
	if _, err := os.Stat(c.file("k1")); !os.IsNotExist(err) {
		t.Error("k1, the least recently used, was kept")
	}
	for _, k := range []string{"k0", "k5"} {
		if _, err := os.Stat(c.file(k)); err != nil {
			t.Errorf("%s evicted: %v", k, err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestMemoryBound(t *testing.T) {
	c, err := New("", 4000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(c, fmt.Sprint("k", i), make([]byte, 1000))
	}
	if c.memBytes > 4000 {
		t.Errorf("memory holds %d bytes, bound 4000", c.memBytes)
	}
	if _, ok := get(c, "k9"); !ok {
		t.Error("the newest entry was evicted")
	}
	if _, ok := get(c, "k0"); ok {
		t.Error("the oldest entry was kept past the bound")
	}
}

// TestValuesKeptDecoded: a value is returned from memory as it was put, without decoding; from
// disk it is decoded once, and an entry its decoder refuses (an older format) is removed.
func TestValuesKeptDecoded(t *testing.T) {
	dir := t.TempDir()
	c, err := New(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	type index struct{ paths []string }
	v := &index{paths: []string{"/etc/os-release"}}
	c.Put("k", v, 100, raw([]byte("encoded")))
	decodes := 0
	decode := func(b []byte) (any, error) {
		decodes++
		if string(b) != "encoded" {
			return nil, errors.New("unknown format")
		}
		return &index{paths: []string{"decoded"}}, nil
	}
	got, ok := c.Get("k", decode)
	if !ok || got != v || decodes != 0 {
		t.Fatalf("memory: ok=%v same=%v decodes=%d, want the value put and no decode", ok, got == v, decodes)
	}
	fresh, err := New(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := fresh.Get("k", decode); !ok || got.(*index).paths[0] != "decoded" || decodes != 1 {
		t.Fatalf("disk: ok=%v decodes=%d", ok, decodes)
	}
	if _, ok := fresh.Get("k", decode); !ok || decodes != 1 {
		t.Errorf("second Get decoded again (%d decodes)", decodes)
	}

	older, err := New(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	refuse := func([]byte) (any, error) { return nil, errors.New("older format") }
	if _, ok := older.Get("k", refuse); ok {
		t.Fatal("an entry its decoder refused was returned")
	}
	if _, err := os.Stat(older.file("k")); !os.IsNotExist(err) {
		t.Errorf("the refused entry was not removed: %v", err)
	}
}
