package blend

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// sdna is the struct catalogue from the DNA1 block.
type sdna struct {
	order    binary.ByteOrder
	ptrSize  int
	names    []string
	types    []string
	tlen     []int
	structs  []sdnaStruct
	byName   map[string]int // type name → struct index
	layouts  map[int]*layout
	slots    map[int][]ptrSlot                  // pointer members per struct, for the tracer
	members  map[string]map[string]memberAnswer // struct → dotted member → answer
	blockOff int64
}

type sdnaStruct struct {
	typ    int
	fields [][2]int // (type index, name index)
}

// field is one member of a struct with its computed place.
type field struct {
	offset   int
	size     int
	typ      int // index into sdna.types
	pointer  bool
	arrayLen int
}

type layout struct {
	size   int
	fields map[string]field // by base name
}

// sdnaReader reads the DNA1 payload with bounds checks.
type sdnaReader struct {
	p     []byte
	s     string // p as one string: names are substrings of it, not one allocation each
	pos   int
	order binary.ByteOrder
	base  int64 // file offset of the payload, for errors
}

func (r *sdnaReader) fail(format string, args ...any) error {
	return newError(ErrCorrupt, r.base+int64(r.pos), "DNA1 (struct catalogue): "+format, args...)
}

func (r *sdnaReader) tag(want string) error {
	if len(r.p)-r.pos < 4 || string(r.p[r.pos:r.pos+4]) != want {
		return r.fail("missing %q section", want)
	}
	r.pos += 4
	return nil
}

// count reads an int32 count and checks that count*minSize bytes remain.
func (r *sdnaReader) count(what string, minSize int) (int, error) {
	if len(r.p)-r.pos < 4 {
		return 0, r.fail("ends before the %s count", what)
	}
	n := int64(int32(r.order.Uint32(r.p[r.pos:])))
	r.pos += 4
	if n < 0 || n*int64(minSize) > int64(len(r.p)-r.pos) {
		return 0, r.fail("%s count %d does not fit in the %d remaining bytes", what, n, len(r.p)-r.pos)
	}
	return int(n), nil
}

func (r *sdnaReader) strings(n int, what string) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		end := bytes.IndexByte(r.p[r.pos:], 0)
		if end < 0 {
			return nil, r.fail("%s %d is not NUL-terminated", what, i)
		}
		out[i] = r.s[r.pos : r.pos+end]
		r.pos += end + 1
	}
	return out, nil
}

// align pads to 4 bytes relative to the payload start, as Blender writes it.
func (r *sdnaReader) align() { r.pos = (r.pos + 3) &^ 3 }

func (r *sdnaReader) u16() int {
	v := int(r.order.Uint16(r.p[r.pos:]))
	r.pos += 2
	return v
}

func parseSDNA(p []byte, order binary.ByteOrder, ptrSize int, base int64) (*sdna, error) {
	r := &sdnaReader{p: p, s: string(p), order: order, base: base}
	if err := r.tag("SDNA"); err != nil {
		return nil, err
	}
	if err := r.tag("NAME"); err != nil {
		return nil, err
	}
	nNames, err := r.count("name", 1)
	if err != nil {
		return nil, err
	}
	names, err := r.strings(nNames, "name")
	if err != nil {
		return nil, err
	}
	r.align()
	if err := r.tag("TYPE"); err != nil {
		return nil, err
	}
	nTypes, err := r.count("type", 1)
	if err != nil {
		return nil, err
	}
	types, err := r.strings(nTypes, "type")
	if err != nil {
		return nil, err
	}
	r.align()
	if err := r.tag("TLEN"); err != nil {
		return nil, err
	}
	if int64(nTypes)*2 > int64(len(p)-r.pos) {
		return nil, r.fail("TLEN needs %d bytes, %d remain", nTypes*2, len(p)-r.pos)
	}
	tlen := make([]int, nTypes)
	for i := range tlen {
		tlen[i] = r.u16()
	}
	r.align()
	if err := r.tag("STRC"); err != nil {
		return nil, err
	}
	nStructs, err := r.count("struct", 4)
	if err != nil {
		return nil, err
	}
	d := &sdna{order: order, ptrSize: ptrSize, names: names, types: types, tlen: tlen,
		structs: make([]sdnaStruct, nStructs), byName: make(map[string]int, nStructs),
		layouts: map[int]*layout{}, blockOff: base}
	for i := range d.structs {
		if len(p)-r.pos < 4 {
			return nil, r.fail("ends inside struct %d", i)
		}
		typ, nFields := r.u16(), r.u16()
		if typ >= nTypes {
			return nil, r.fail("struct %d has type index %d, only %d types", i, typ, nTypes)
		}
		if nFields*4 > len(p)-r.pos {
			return nil, r.fail("struct %s has %d fields, more than the remaining bytes hold", types[typ], nFields)
		}
		s := sdnaStruct{typ: typ, fields: make([][2]int, nFields)}
		for j := range s.fields {
			ft, fn := r.u16(), r.u16()
			if ft >= nTypes || fn >= nNames {
				return nil, r.fail("struct %s field %d has type %d / name %d out of range (%d types, %d names)", types[typ], j, ft, fn, nTypes, nNames)
			}
			s.fields[j] = [2]int{ft, fn}
		}
		d.structs[i] = s
		if _, dup := d.byName[types[typ]]; !dup {
			d.byName[types[typ]] = i
		}
	}
	// Blender derives the pointer size as sizeof(ListBase)/2: a cheap check
	// that the header and the catalogue agree.
	if i, ok := d.byName["ListBase"]; ok && tlen[d.structs[i].typ] != 2*ptrSize {
		return nil, r.fail("ListBase is %d bytes but the header says %d-byte pointers", tlen[d.structs[i].typ], ptrSize)
	}
	return d, nil
}

// parseFieldName splits "*vert[3]" into pointer=true, base "vert", arrayLen 3.
func parseFieldName(name string) (base string, pointer bool, arrayLen int, ok bool) {
	pointer = strings.HasPrefix(name, "*") || strings.HasPrefix(name, "(*")
	arrayLen = 1
	rest := name
	if i := strings.IndexByte(name, '['); i >= 0 {
		rest = name[:i]
		dims := name[i:]
		for dims != "" {
			if dims[0] != '[' {
				return "", false, 0, false
			}
			end := strings.IndexByte(dims, ']')
			if end < 0 {
				return "", false, 0, false
			}
			n, err := strconv.Atoi(dims[1:end])
			if err != nil || n < 0 || (n > 0 && arrayLen > math.MaxInt32/n) {
				return "", false, 0, false
			}
			arrayLen *= n
			dims = dims[end+1:]
		}
	}
	base = strings.Map(func(r rune) rune {
		if r == '*' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, rest)
	return base, pointer, arrayLen, true
}

// layoutOf computes field offsets of the named struct from the file's own
// tables: each offset is the sum of the sizes before it (no implicit padding).
func (d *sdna) layoutOf(structName string) (*layout, error) {
	i, ok := d.byName[structName]
	if !ok {
		return nil, nil
	}
	if l, ok := d.layouts[i]; ok {
		return l, nil
	}
	s := d.structs[i]
	l := &layout{size: d.tlen[s.typ], fields: make(map[string]field, len(s.fields))}
	off := 0
	for _, f := range s.fields {
		name := d.names[f[1]]
		base, ptr, n, ok := parseFieldName(name)
		if !ok {
			return nil, newError(ErrCorrupt, d.blockOff, "DNA1: struct %s has malformed field name %q", structName, name)
		}
		elem := d.tlen[f[0]]
		if ptr {
			elem = d.ptrSize
		}
		size := elem * n
		if _, dup := l.fields[base]; !dup {
			l.fields[base] = field{offset: off, size: size, typ: f[0], pointer: ptr, arrayLen: n}
		}
		off += size
		if off > l.size {
			return nil, newError(ErrCorrupt, d.blockOff, "DNA1: struct %s fields need more than its %d bytes", structName, l.size)
		}
	}
	d.layouts[i] = l
	return l, nil
}

// lookup follows a path of embedded struct members, e.g. Scene r im_format
// imtype, and returns the last field with its offset from the outer struct.
// found is false when a member does not exist in this file's catalogue.
func (d *sdna) lookup(structName string, path ...string) (f field, found bool, err error) {
	offset := 0
	cur := structName
	for i, member := range path {
		l, err := d.layoutOf(cur)
		if err != nil || l == nil {
			return field{}, false, err
		}
		f, ok := l.fields[member]
		if !ok {
			return field{}, false, nil
		}
		offset += f.offset
		if i < len(path)-1 {
			if f.pointer {
				return field{}, false, nil
			}
			cur = d.types[f.typ]
		}
		if i == len(path)-1 {
			f.offset = offset
			return f, true, nil
		}
	}
	return field{}, false, nil
}

// readInt decodes an integer member by its SDNA type and widens it.
func (d *sdna) readInt(p []byte, f field) (int64, bool) {
	if f.offset < 0 || f.offset > len(p) {
		return 0, false
	}
	q := p[f.offset:]
	switch d.types[f.typ] {
	case "char", "uchar", "uint8_t":
		if len(q) < 1 {
			return 0, false
		}
		return int64(q[0]), true
	case "int8_t":
		if len(q) < 1 {
			return 0, false
		}
		return int64(int8(q[0])), true
	case "short":
		if len(q) < 2 {
			return 0, false
		}
		return int64(int16(d.order.Uint16(q))), true
	case "ushort", "uint16_t":
		if len(q) < 2 {
			return 0, false
		}
		return int64(d.order.Uint16(q)), true
	case "int", "long", "int32_t":
		if len(q) < 4 {
			return 0, false
		}
		return int64(int32(d.order.Uint32(q))), true
	case "uint", "ulong", "uint32_t":
		if len(q) < 4 {
			return 0, false
		}
		return int64(d.order.Uint32(q)), true
	case "int64_t", "uint64_t":
		if len(q) < 8 {
			return 0, false
		}
		return int64(d.order.Uint64(q)), true
	}
	return 0, false
}

// readFloat decodes a float or double member.
func (d *sdna) readFloat(p []byte, f field) (float64, bool) {
	if f.offset < 0 || f.offset > len(p) {
		return 0, false
	}
	q := p[f.offset:]
	switch d.types[f.typ] {
	case "float":
		if len(q) < 4 {
			return 0, false
		}
		v := math.Float32frombits(d.order.Uint32(q))
		// Shortest decimal of the float32 (1.001, not 1.00100004673).
		out, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return out, true
	case "double":
		if len(q) < 8 {
			return 0, false
		}
		return math.Float64frombits(d.order.Uint64(q)), true
	}
	return 0, false
}

// readPointer decodes a pointer member (4 or 8 bytes).
func (d *sdna) readPointer(p []byte, f field) (uint64, bool) {
	if !f.pointer || f.offset < 0 || f.offset+d.ptrSize > len(p) {
		return 0, false
	}
	if d.ptrSize == 4 {
		return uint64(d.order.Uint32(p[f.offset:])), true
	}
	return d.order.Uint64(p[f.offset:]), true
}

// readString decodes a char array up to its first NUL.
func readString(p []byte, f field) (string, bool) {
	if f.offset < 0 || f.offset+f.size > len(p) {
		return "", false
	}
	s := p[f.offset : f.offset+f.size]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s), true
}
