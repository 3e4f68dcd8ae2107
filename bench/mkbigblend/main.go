// Command mkbigblend makes a huge .blend for benchmarks without using the
// disk space, from a real uncompressed .blend. Added bytes are sparse holes.
//
//   - -mode insert (default): one DATA block of -size bytes just before DNA1.
//     The best case: one header to skip the whole gigabyte.
//   - -mode scale: the same blocks in the same order, every DATA payload of
//     at least 1 KiB scaled by one common factor so the file is about -size
//     bytes: how a big production file looks (same structure, far bigger
//     mesh and image arrays).
//
// A reader that seeks past blocks it does not need stays small and fast; one
// that reads or buffers everything does not.
//
//	go run ./bench/mkbigblend -in scene.blend -out big.blend -size 1073741824
//	go run ./bench/mkbigblend -mode scale -in scene.blend -out big.blend -size 1073741824
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	in := flag.String("in", "", "a real uncompressed .blend (12-byte header, 8-byte pointers, little-endian)")
	out := flag.String("out", "", "where to write the big .blend")
	size := flag.Int64("size", 1<<30, "insert: payload size of the inserted DATA block (at most 2 GiB - 1); scale: target file size")
	mode := flag.String("mode", "insert", "insert (one huge DATA block) or scale (scale the DATA payloads of at least 1 KiB)")
	flag.Parse()
	if *in == "" || *out == "" || (*mode != "insert" && *mode != "scale") {
		fmt.Fprintln(os.Stderr, "usage: mkbigblend [-mode insert|scale] -in SRC.blend -out BIG.blend [-size BYTES]")
		os.Exit(2)
	}
	var err error
	if *mode == "scale" {
		err = runScale(*in, *out, *size)
	} else {
		err = run(*in, *out, *size)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbigblend:", err)
		os.Exit(1)
	}
}

const bheadSize = 24 // SmallBHead8: code, int32 len, uint64 old, int32 SDNAnr, int32 nr

func run(in, out string, size int64) error {
	if size <= 0 || size > 1<<31-1 {
		return fmt.Errorf("-size %d: must be between 1 and %d (SmallBHead8 stores len as int32)", size, int64(1<<31-1))
	}
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if len(src) < 12 || string(src[:9]) != "BLENDER-v" {
		return fmt.Errorf("%s: need an uncompressed .blend with 8-byte pointers, little-endian (header BLENDER-v...); "+
			"save it from Blender with Compress off", in)
	}
	dna, err := findDNA1(src)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(src[:dna]); err != nil {
		return err
	}
	var bh [bheadSize]byte
	copy(bh[:4], "DATA")
	binary.LittleEndian.PutUint32(bh[4:], uint32(size))
	binary.LittleEndian.PutUint64(bh[8:], 0x0b16b10cb16b10c0) // an address no real block uses
	binary.LittleEndian.PutUint32(bh[16:], 0)                 // SDNA index 0, raw bytes
	binary.LittleEndian.PutUint32(bh[20:], 1)
	if _, err := f.Write(bh[:]); err != nil {
		return err
	}
	// Seeking past the payload leaves a hole: zeros that take no disk space.
	if _, err := f.Seek(size, io.SeekCurrent); err != nil {
		return err
	}
	if _, err := f.Write(src[dna:]); err != nil {
		return err
	}
	return f.Close()
}

// findDNA1 walks the block headers and returns the offset of the DNA1 block.
func findDNA1(src []byte) (int, error) {
	for off := 12; off+bheadSize <= len(src); {
		code := string(src[off : off+4])
		n := int(int32(binary.LittleEndian.Uint32(src[off+4:])))
		if n < 0 || off+bheadSize+n > len(src) {
			return 0, fmt.Errorf("block %q at %d has bad length %d", code, off, n)
		}
		switch code {
		case "DNA1":
			return off, nil
		case "ENDB":
			return 0, errors.New("no DNA1 block before ENDB")
		}
		off += bheadSize + n
	}
	return 0, errors.New("no DNA1 block")
}

// minScaled is the smallest DATA payload -mode scale grows.
const minScaled = 1024

// runScale writes in's blocks in order, each DATA payload of at least
// minScaled bytes grown by one common factor (the growth a hole), so the
// file is about size bytes.
func runScale(in, out string, size int64) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if len(src) < 12 || string(src[:9]) != "BLENDER-v" {
		return fmt.Errorf("%s: need an uncompressed .blend with 8-byte pointers, little-endian (header BLENDER-v...); "+
			"save it from Blender with Compress off", in)
	}
	type blk struct{ off, n int }
	var blocks []blk
	var scalable int64
	end := 0
	for off := 12; ; {
		if off+bheadSize > len(src) {
			return fmt.Errorf("%s: no ENDB block", in)
		}
		code := string(src[off : off+4])
		n := int(int32(binary.LittleEndian.Uint32(src[off+4:])))
		if code == "ENDB" {
			end = off
			break
		}
		if n < 0 || off+bheadSize+n > len(src) {
			return fmt.Errorf("%s: block %q at %d has bad length %d", in, code, off, n)
		}
		blocks = append(blocks, blk{off, n})
		if code == "DATA" && n >= minScaled {
			scalable += int64(n)
		}
		off += bheadSize + n
	}
	fixed := int64(len(src)) - scalable
	if scalable == 0 || size <= int64(len(src)) {
		return fmt.Errorf("%s: nothing to scale, or -size %d is not above the file's %d bytes", in, size, len(src))
	}
	factor := float64(size-fixed) / float64(scalable)

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := func(p []byte) error { _, err := f.Write(p); return err }
	if err := w(src[:12]); err != nil {
		return err
	}
	scaled := 0
	for _, b := range blocks {
		whole := src[b.off : b.off+bheadSize+b.n]
		if string(whole[:4]) != "DATA" || b.n < minScaled {
			if err := w(whole); err != nil {
				return err
			}
			continue
		}
		n := min(int64(float64(b.n)*factor), 1<<31-1)
		var bh [bheadSize]byte
		copy(bh[:], whole[:bheadSize])
		binary.LittleEndian.PutUint32(bh[4:], uint32(n))
		if err := w(bh[:]); err != nil {
			return err
		}
		if err := w(whole[bheadSize:]); err != nil {
			return err
		}
		if _, err := f.Seek(n-int64(b.n), io.SeekCurrent); err != nil {
			return err
		}
		scaled++
	}
	if err := w(src[end:]); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mkbigblend: %d blocks, %d DATA payloads scaled by %.0fx\n", len(blocks), scaled, factor)
	return f.Close()
}
