// Command mkbigblend makes a huge .blend for memory benchmarks without using
// the disk space: it copies a real uncompressed .blend and inserts one DATA
// block of the requested size just before DNA1, written as a sparse hole.
// A reader that seeks past blocks it does not need stays small; one that
// reads or buffers everything does not.
//
//	go run ./bench/mkbigblend -in scene.blend -out big.blend -size 1073741824
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
	size := flag.Int64("size", 1<<30, "payload size of the inserted DATA block in bytes (at most 2 GiB - 1)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkbigblend -in SRC.blend -out BIG.blend [-size BYTES]")
		os.Exit(2)
	}
	if err := run(*in, *out, *size); err != nil {
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
