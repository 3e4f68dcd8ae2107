package blend

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// extract turns the kept blocks into Info, reading every field through the
// file's own SDNA.
func extract(bs *blocks, compression string) (*Info, error) {
	h := bs.hdr
	info := &Info{
		Version:       versionString(h),
		VersionNumber: h.version,
		Compression:   compression,
	}
	if bs.dna1 == nil {
		return nil, newError(ErrCorrupt, -1, "no DNA1 block (struct catalogue) before ENDB, after %d blocks", bs.count)
	}
	d, err := parseSDNA(bs.dna1.data, h.order, h.ptrSize, bs.dna1.offset+int64(h.bheadSize()))
	if err != nil {
		return nil, err
	}
	if len(bs.scenes) == 0 {
		return nil, newError(ErrNoScene, -1, "the file has no SC (scene) block among its %d blocks", bs.count)
	}
	sc, err := d.layoutOf("Scene")
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, newError(ErrCorrupt, bs.dna1.offset, "DNA1 has no Scene struct")
	}
	nameField, ok, err := d.lookup("Scene", "id", "name")
	if err != nil {
		return nil, err
	}
	if !ok || nameField.size < 2 {
		return nil, newError(ErrCorrupt, bs.dna1.offset, "DNA1 Scene has no id.name")
	}
	names := make([]string, len(bs.scenes))
	for i, b := range bs.scenes {
		if b.sdna < 0 || b.sdna >= int64(len(d.structs)) {
			return nil, newError(ErrCorrupt, b.offset, "SC block #%d has SDNA index %d; the catalogue has %d structs", i, b.sdna, len(d.structs))
		}
		if got := d.types[d.structs[b.sdna].typ]; got != "Scene" {
			return nil, newError(ErrCorrupt, b.offset, "SC block #%d is typed %s in the catalogue, not Scene", i, got)
		}
		if int64(len(b.data)) < int64(sc.size) {
			return nil, newError(ErrCorrupt, b.offset, "SC block #%d holds %d bytes, less than one Scene (%d bytes)", i, len(b.data), sc.size)
		}
		s, _ := readString(b.data, nameField)
		if len(s) >= 2 {
			s = s[2:] // drop the "SC" ID code
		} else {
			s = ""
		}
		names[i] = s
	}
	info.Scenes = names
	active, _ := activeScene(bs, d, names)
	info.Scene = names[active]
	if err := readRenderData(info, d, bs.scenes[active]); err != nil {
		return nil, err
	}
	info.Thumbnail = decodeThumbnail(bs.test, h)
	return info, nil
}

// versionString is "major.minor" as Blender names it: 304 → "3.4", 279 → "2.79".
func versionString(h *header) string {
	return fmt.Sprintf("%d.%d", h.version/100, h.version%100)
}

// activeScene picks GLOB.curscene, then the first REND's scene name, then
// the first scene; how says which rule decided.
func activeScene(bs *blocks, d *sdna, names []string) (i int, how string) {
	if bs.glob != nil {
		if f, ok, err := d.lookup("FileGlobal", "curscene"); err == nil && ok {
			if ptr, ok := d.readPointer(bs.glob.data, f); ok && ptr != 0 {
				for i, b := range bs.scenes {
					if b.old == ptr {
						return i, "curscene"
					}
				}
			}
		}
	}
	if bs.rend != nil && len(bs.rend.data) > 8 {
		name := bs.rend.data[8:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		for i, n := range names {
			if n == string(name) {
				return i, "REND"
			}
		}
	}
	return 0, "first"
}

func readRenderData(info *Info, d *sdna, b *block) error {
	p := b.data
	intField := func(path ...string) (int64, bool, error) {
		f, ok, err := d.lookup("Scene", path...)
		if err != nil || !ok {
			return 0, false, err
		}
		v, ok := d.readInt(p, f)
		if !ok {
			return 0, false, newError(ErrCorrupt, b.offset, "Scene.%s has type %s, not an integer", joinPath(path), d.types[f.typ])
		}
		return v, true, nil
	}
	required := []struct {
		dst  *int
		path []string
	}{
		{&info.FrameStart, []string{"r", "sfra"}},
		{&info.FrameEnd, []string{"r", "efra"}},
		{&info.FPS, []string{"r", "frs_sec"}},
		{&info.ResolutionX, []string{"r", "xsch"}},
		{&info.ResolutionY, []string{"r", "ysch"}},
		{&info.ResolutionPercentage, []string{"r", "size"}},
	}
	for _, r := range required {
		v, ok, err := intField(r.path...)
		if err != nil {
			return err
		}
		if !ok {
			return newError(ErrCorrupt, b.offset, "DNA1 has no Scene.%s field", joinPath(r.path))
		}
		*r.dst = int(v)
	}
	info.FrameStep = 1 // 2.4x has no frame_step
	if v, ok, err := intField("r", "frame_step"); err != nil {
		return err
	} else if ok {
		info.FrameStep = int(v)
	}
	// Blender allows frame_step 0 (the RNA range starts at 0) and then
	// renders only the first frame; negative steps it cannot store.
	if info.FrameStep < 0 {
		return newError(ErrCorrupt, b.offset, "scene %q has frame_step %d; it must be 0 or more", info.Scene, info.FrameStep)
	}
	info.FPSBase = 1 // 2.41 has no frs_sec_base
	if f, ok, err := d.lookup("Scene", "r", "frs_sec_base"); err != nil {
		return err
	} else if ok {
		if v, ok := d.readFloat(p, f); ok {
			info.FPSBase = v
		}
	}
	if err := checkRenderValues(info, b); err != nil {
		return err
	}
	if f, ok, err := d.lookup("Scene", "r", "engine"); err != nil {
		return err
	} else if ok {
		info.Engine, _ = readString(p, f)
	}
	// Since 2.62 r.imtype is stale; prefer im_format.imtype whenever it exists.
	imtype, ok, err := intField("r", "im_format", "imtype")
	if err != nil {
		return err
	}
	if !ok {
		imtype, ok, err = intField("r", "imtype")
		if err != nil {
			return err
		}
	}
	if !ok {
		return newError(ErrCorrupt, b.offset, "DNA1 has neither Scene.r.im_format.imtype nor Scene.r.imtype")
	}
	info.FileFormat = imtypeName(imtype)
	switch {
	case info.FrameEnd < info.FrameStart:
	case info.FrameStep == 0:
		info.FrameCount = 1 // Blender renders the first frame only
	default:
		info.FrameCount = (info.FrameEnd-info.FrameStart)/info.FrameStep + 1
	}
	return nil
}

// checkRenderValues rejects settings Blender cannot store (its RNA ranges
// start at 1, or above 0 for fps_base): they would divide by zero or yield
// an empty image later.
func checkRenderValues(info *Info, b *block) error {
	bad := func(field, value, want string) error {
		return newError(ErrCorrupt, b.offset, "scene %q has render.%s = %s; it must be %s", info.Scene, field, value, want)
	}
	switch {
	case info.FPS <= 0:
		return bad("fps", strconv.Itoa(info.FPS), "at least 1")
	case math.IsNaN(info.FPSBase) || math.IsInf(info.FPSBase, 0) || info.FPSBase <= 0:
		return bad("fps_base", strconv.FormatFloat(info.FPSBase, 'g', -1, 64), "a finite number above 0")
	case info.ResolutionX <= 0:
		return bad("resolution_x", strconv.Itoa(info.ResolutionX), "at least 1")
	case info.ResolutionY <= 0:
		return bad("resolution_y", strconv.Itoa(info.ResolutionY), "at least 1")
	case info.ResolutionPercentage <= 0:
		return bad("resolution_percentage", strconv.Itoa(info.ResolutionPercentage), "at least 1")
	}
	return nil
}

func joinPath(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// imtypeName maps R_IMF_IMTYPE_* to Blender's RNA identifier.
func imtypeName(v int64) string {
	switch v {
	case 0:
		return "TARGA"
	case 1:
		return "IRIS"
	case 4:
		return "JPEG"
	case 7:
		return "IRIZ"
	case 14:
		return "TARGA_RAW"
	case 15:
		return "AVI_RAW"
	case 16:
		return "AVI_JPEG"
	case 17:
		return "PNG"
	case 18:
		return "AVICODEC"
	case 19:
		return "QUICKTIME"
	case 20:
		return "BMP"
	case 21:
		return "HDR"
	case 22:
		return "TIFF"
	case 23:
		return "OPEN_EXR"
	case 24:
		return "FFMPEG"
	case 25:
		return "FRAMESERVER"
	case 26:
		return "CINEON"
	case 27:
		return "DPX"
	case 28:
		return "OPEN_EXR_MULTILAYER"
	case 29:
		return "DDS"
	case 30:
		return "JPEG2000"
	case 31:
		return "H264"
	case 32:
		return "XVID"
	case 33:
		return "THEORA"
	case 34:
		return "PSD"
	case 35:
		return "WEBP"
	case 36:
		return "AV1"
	case 37:
		return "AVIF"
	case 255:
		return "INVALID"
	}
	return fmt.Sprintf("UNKNOWN(%d)", v)
}
