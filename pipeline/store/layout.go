package store

import (
	"fmt"
	"strings"
)

// The store layout, shared by the client, every worker and every front-end:
//
//	blends/<sha256>.blend                      the scene, by content hash (uploaded once)
//	inputs/<sha256>                            every input a scene needs (textures, libraries, caches), by content hash (uploaded once)
//	cache/<cache-key>.json                     {"run_id": ...} of a finished run with the same inputs
//	runs/<run-id>/plan.json                    the plan every worker reads
//	runs/<run-id>/inputs.json                  the input manifest: workspace-relative path -> sha256 and size
//	runs/<run-id>/frames/frame_000123.png      each frame, stored as soon as Blender saves it
//	runs/<run-id>/segments/chunk_00003.mp4     each chunk's video segment
//	runs/<run-id>/chunks/chunk_00003.json      each chunk's timings and attempts
//	runs/<run-id>/logs/chunk_00003.log         the tail of Blender's log for each chunk
//	runs/<run-id>/<scene>.mp4                  the finished video
//	runs/<run-id>/preview.gif                  a small animated preview
//	runs/<run-id>/thumbnail.png                the last frame, small
//	runs/<run-id>/manifest.json                the result: links, frames, timings, cost
//	framefleet/conditional-writes.json         whether the server honours conditional writes (probed once)
//
// That is the trusted scope (the default branch, protected refs, operators).
// Every other trust scope (preview, bot, bot-<name>) has the same layout
// under its own prefix, and writes nothing outside it (store.NewScoped):
//
//	scopes/<scope>/blends/..., scopes/<scope>/cache/..., scopes/<scope>/runs/...
//
// A scope reads the trusted scope's scenes, inputs and run files when it
// lacks them (scenes and inputs are stored by content hash, and the worker
// checks the hash), and its cache entries and finished runs through a
// read-only view (pipeline.Runs); never its records or listings. The trusted
// scope never reads under scopes/, so nothing a branch writes can become
// what main renders or serves. deploy/framefleet.yaml's roles grant exactly
// these prefixes.

// BlendKey is where a scene file with this SHA-256 is stored.
func BlendKey(sha256hex string) string { return "blends/" + sha256hex + ".blend" }

// InputKey is where an input file with this SHA-256 is stored.
func InputKey(sha256hex string) string { return "inputs/" + sha256hex }

// InputManifestKey is the run's input manifest.
func InputManifestKey(runID string) string { return RunPrefix(runID) + "inputs.json" }

// CacheKey is where the run id of a finished render with this cache key is stored.
func CacheKey(key string) string { return "cache/" + key + ".json" }

// RunPrefix is the prefix that holds everything of one run.
func RunPrefix(runID string) string { return "runs/" + runID + "/" }

// PlanKey is the run's plan.
func PlanKey(runID string) string { return RunPrefix(runID) + "plan.json" }

// FramesPrefix holds the run's frames.
func FramesPrefix(runID string) string { return RunPrefix(runID) + "frames/" }

// FrameKey is one frame; ext is the file extension without the dot ("png").
func FrameKey(runID string, frame int, ext string) string {
	return FramesPrefix(runID) + FrameName(frame, ext)
}

// FrameName is the file name of a frame, e.g. frame_000123.png or frame_-00005.png.
func FrameName(frame int, ext string) string {
	return fmt.Sprintf("frame_%06d.%s", frame, strings.ToLower(ext))
}

// SegmentKey is chunk i's video segment.
func SegmentKey(runID string, chunk int) string {
	return fmt.Sprintf("%ssegments/chunk_%05d.mp4", RunPrefix(runID), chunk)
}

// ChunkReportKey is chunk i's timing report.
func ChunkReportKey(runID string, chunk int) string {
	return fmt.Sprintf("%schunks/chunk_%05d.json", RunPrefix(runID), chunk)
}

// ChunkLogKey is the tail of Blender's log for chunk i.
func ChunkLogKey(runID string, chunk int) string {
	return fmt.Sprintf("%slogs/chunk_%05d.log", RunPrefix(runID), chunk)
}

// VideoKey is the finished video, named after the scene.
func VideoKey(runID, scene string) string { return RunPrefix(runID) + SafeName(scene) + ".mp4" }

// PreviewKey is the small animated preview.
func PreviewKey(runID string) string { return RunPrefix(runID) + "preview.gif" }

// ThumbnailKey is the thumbnail of the last frame.
func ThumbnailKey(runID string) string { return RunPrefix(runID) + "thumbnail.png" }

// ManifestKey is the run's result.
func ManifestKey(runID string) string { return RunPrefix(runID) + "manifest.json" }

// SafeName turns a scene name (any unicode, slashes included) into a file name.
func SafeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == 0 || r < 0x20 || r == ':' || r == '*' || r == '?' || r == '"' || r == '<' || r == '>' || r == '|':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.Trim(b.String(), ". ")
	if s == "" {
		return "scene"
	}
	return s
}

// Objects that can be re-made from the finished video's inputs (frames and
// segments) carry this tag on S3 so a lifecycle rule can expire them.
const (
	RetentionTag          = "framefleet-retention"
	RetentionIntermediate = "intermediate"
)

// IsIntermediate reports whether key is a run's frame or segment, in any scope.
func IsIntermediate(key string) bool {
	if rest, ok := strings.CutPrefix(key, ScopesDir); ok {
		if _, k, ok := strings.Cut(rest, "/"); ok {
			key = k
		}
	}
	parts := strings.Split(key, "/")
	return len(parts) == 4 && parts[0] == "runs" && (parts[2] == "frames" || parts[2] == "segments")
}
