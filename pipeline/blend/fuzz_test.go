package blend

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/framefleet/framefleet/internal/testenv"
)

// FuzzRead: on any input the reader returns an Info or an error of one of
// the documented kinds, and never panics.
func FuzzRead(f *testing.F) {
	// The real corpus, when present, compacted to the blocks the reader
	// uses: full files (up to 1 MB) make every new coverage find cost a
	// minute of minimisation. Fuzzing still runs without the corpus.
	for _, seed := range compactCorpus(f) {
		f.Add(seed)
	}
	for _, seed := range [][]byte{
		nil,
		[]byte("BLENDER"),
		[]byte("BLENDER-v279ENDB"),
		[]byte("BLENDER_V260\x00\x00SC\x00\x00\x00\x10"),
		[]byte("BLENDER17-01v0500ENDB"),
		[]byte("BLENDER18-02v0600"),
		[]byte("version https://git-lfs.github.com/spec/v1\n"),
		{0x1f, 0x8b, 0x08, 0x00},
		{0x28, 0xb5, 0x2f, 0xfd, 0x00},
		{0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00},
		gzipBytes(f, []byte("BLENDER-v279REND\x48\x00\x00\x00")),
		zstdBytes(f, []byte("BLENDER-v279ENDB")),
	} {
		f.Add(seed)
	}
	capMinimizeTime()
	// A small cap keeps each run fast; the code path is the one ReadStream uses.
	lim := defaultLimits()
	lim.maxDecompressed = 64 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		atInfo, err := readAt(bytes.NewReader(data), int64(len(data)), lim)
		checkOutcome(t, "ReadAt", atInfo, err)
		streamInfo, err := readStream(bytes.NewReader(data), lim)
		checkOutcome(t, "ReadStream", streamInfo, err)
		// Both paths walk the same blocks: when both accept, they agree.
		if atInfo != nil && streamInfo != nil && !reflect.DeepEqual(atInfo, streamInfo) {
			t.Fatalf("ReadAt %+v and ReadStream %+v differ", atInfo, streamInfo)
		}
	})
}

func checkOutcome(t *testing.T, via string, info *Info, err error) {
	t.Helper()
	if err != nil {
		if info != nil {
			t.Fatalf("%s returned both an Info and the error %v", via, err)
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !slices.ContainsFunc(sentinels(), func(k error) bool { return errors.Is(err, k) }) {
			t.Fatalf("%s error %v is not one of the documented kinds", via, err)
		}
		return
	}
	if info == nil {
		t.Fatalf("%s returned neither an Info nor an error", via)
	}
	if !slices.Contains(info.Scenes, info.Scene) || info.FrameStep < 0 || info.FPS < 1 || !(info.FPSBase > 0) ||
		info.ResolutionX < 1 || info.ResolutionY < 1 || info.ResolutionPercentage < 1 {
		t.Fatalf("%s returned an inconsistent Info %+v", via, info)
	}
	if th := info.Thumbnail; th != nil && len(th.RGBA) != th.Width*th.Height*4 {
		t.Fatalf("%s thumbnail %dx%d has %d bytes", via, th.Width, th.Height, len(th.RGBA))
	}
}

// compactCorpus returns every corpus file compacted (see compactBlend), plus
// a gzip and a zstd one; nothing when the corpus is absent.
func compactCorpus(tb testing.TB) [][]byte {
	dir := filepath.Join(testenv.SharedDir(), "blendfiles")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.blend"))
	var seeds [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		seeds = append(seeds, compactBlend(tb, decompress(tb, data)))
	}
	if len(seeds) >= 2 {
		seeds = append(seeds, gzipBytes(tb, seeds[0]), zstdBytes(tb, seeds[1]))
	}
	return seeds
}

// compactBlend keeps a real file's header, REND, GLOB and SC blocks, a 2×2
// thumbnail and ENDB, with a DNA1 reduced to the structs the reader looks
// at (types and names renumbered). The result reads like the original.
func compactBlend(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	l := walkTest(tb, raw)
	order := l.order.(binary.AppendByteOrder)
	dnaBlock := l.find(tb, "DNA1")
	d, err := parseSDNA(raw[dnaBlock.off+dnaBlock.headerLen:dnaBlock.end()], l.order, l.ptrSize, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var origTypes []int // new type index → original
	var names []string
	typeIdx, nameIdx := map[int]int{}, map[int]int{}
	mapType := func(i int) int {
		if j, ok := typeIdx[i]; ok {
			return j
		}
		typeIdx[i] = len(origTypes)
		origTypes = append(origTypes, i)
		return typeIdx[i]
	}
	mapName := func(i int) int {
		if j, ok := nameIdx[i]; ok {
			return j
		}
		nameIdx[i] = len(names)
		names = append(names, d.names[i])
		return nameIdx[i]
	}
	var strc []byte
	u16 := func(v int) { strc = order.AppendUint16(strc, uint16(v)) }
	nStructs, sceneIdx := 0, -1
	for _, name := range []string{"ListBase", "ID", "FileGlobal", "ImageFormatData", "RenderData", "Scene"} {
		i, ok := d.byName[name]
		if !ok {
			continue
		}
		s := d.structs[i]
		if name == "Scene" {
			sceneIdx = nStructs
		}
		u16(mapType(s.typ))
		u16(len(s.fields))
		for _, f := range s.fields {
			u16(mapType(f[0]))
			u16(mapName(f[1]))
		}
		nStructs++
	}
	pad := func(p []byte) []byte {
		for len(p)%4 != 0 {
			p = append(p, 0)
		}
		return p
	}
	dna := []byte("SDNANAME")
	dna = order.AppendUint32(dna, uint32(len(names)))
	for _, n := range names {
		dna = append(append(dna, n...), 0)
	}
	dna = append(pad(dna), "TYPE"...)
	dna = order.AppendUint32(dna, uint32(len(origTypes)))
	for _, t := range origTypes {
		dna = append(append(dna, d.types[t]...), 0)
	}
	dna = append(pad(dna), "TLEN"...)
	for _, t := range origTypes {
		dna = order.AppendUint16(dna, uint16(d.tlen[t]))
	}
	dna = append(pad(dna), "STRC"...)
	dna = order.AppendUint32(dna, uint32(nStructs))
	dna = append(dna, strc...)

	sdnaAt := map[int]int{20: 12, 24: 16, 32: 4}[dnaBlock.headerLen]
	out := bytes.Clone(raw[:l.headerLen])
	for _, b := range l.blocks {
		blk := bytes.Clone(raw[b.off:b.end()])
		switch {
		case b.code == "REND", b.code == "GLOB":
		case b.code == "SC\x00\x00", b.code == "\x00\x00SC":
			l.order.PutUint32(blk[sdnaAt:], uint32(sceneIdx))
		case b.code == "TEST":
			blk = blk[:b.headerLen]
			pixels := order.AppendUint32(nil, 2)
			pixels = order.AppendUint32(pixels, 2)
			pixels = append(pixels, bytes.Repeat([]byte{0x10, 0x80, 0xf0, 0xff}, 4)...)
			blk = append(blk, pixels...)
			l.setLen(blk, testBlock{lenOff: b.lenOff - b.off, lenSize: b.lenSize}, int64(len(pixels)))
		case b.code == "DNA1":
			blk = append(blk[:b.headerLen], dna...)
			l.setLen(blk, testBlock{lenOff: b.lenOff - b.off, lenSize: b.lenSize}, int64(len(dna)))
		case b.code == "ENDB":
		default:
			continue
		}
		out = append(out, blk...)
	}
	return out
}

// TestCompactSeedsRead: the fuzz seeds must be valid files that read like
// the originals, or the fuzzer would start from error paths only.
func TestCompactSeedsRead(t *testing.T) {
	dir := corpusDir(t)
	paths, err := filepath.Glob(filepath.Join(dir, "*.blend"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus in %s", dir)
	}
	for _, p := range paths {
		raw := decompress(t, readCorpus(t, filepath.Base(p)))
		want := mustRead(t, raw)
		small := compactBlend(t, raw)
		got, err := readBoth(t, small)
		if err != nil {
			t.Fatalf("%s compacted: %v", filepath.Base(p), err)
		}
		if (want.Thumbnail != nil) != (got.Thumbnail != nil) {
			t.Errorf("%s: thumbnail %v, want %v", filepath.Base(p), got.Thumbnail != nil, want.Thumbnail != nil)
		}
		if !infoEqual(*got, *want) || !reflect.DeepEqual(got.Scenes, want.Scenes) {
			t.Errorf("%s compacted (%d of %d bytes): %+v, want %+v", filepath.Base(p), len(small), len(raw), got, want)
		}
	}
}

// capMinimizeTime limits minimisation of each new coverage find to 2s unless
// -fuzzminimizetime was given. With the default (60s) the fuzzer spends
// nearly all its time shrinking multi-KB .blend inputs: measured 41 execs
// in 30s against about 100,000 with the cap.
func capMinimizeTime() {
	const name = "test.fuzzminimizetime"
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	if fl := flag.Lookup(name); fl != nil && !given {
		_ = fl.Value.Set("2s")
	}
}

// FuzzTrace: on any input the tracer and the path rewriter return a result
// or an error of the documented kinds, and never panic.
func FuzzTrace(f *testing.F) {
	for _, seed := range compactCorpus(f) {
		f.Add(seed)
	}
	// One whole real file (zstd, ~100 KB): images, node trees and the rest
	// of a full catalogue for the pointer walk.
	if data, err := os.ReadFile(filepath.Join(testenv.SharedDir(), "blendfiles", "37_lamp_Cycles.blend")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("BLENDER-v279ENDB"))
	capMinimizeTime()
	lim := defaultLimits()
	lim.maxDecompressed = 64 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		bf, err := newBlockFile(bytes.NewReader(data), int64(len(data)), lim, nil)
		if err != nil {
			checkOutcome(t, "newBlockFile", nil, err)
			return
		}
		deps, err := traceBlockFile(context.Background(), "/nonexistent-framefleet-fuzz/scene.blend", bf, newFileCache())
		if err != nil {
			checkOutcome(t, "Trace", nil, err)
		} else {
			for _, d := range deps.Dependencies {
				if d.File == "" || d.Kind == "" || len(d.Refs) == 0 {
					t.Fatalf("incomplete dependency %+v", d)
				}
			}
		}
		n := 0
		err = bf.rewrite(io.Discard, func(stored string) (string, bool) {
			n++
			return "//x", n%2 == 0
		})
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("rewrite error %v is not a FormatError", err)
			}
		}
	})
}
