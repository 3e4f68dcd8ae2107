package bot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-github/v62/github"
	"github.com/slack-go/slack"

	"github.com/framefleet/framefleet/pipeline/blend"
	"github.com/framefleet/framefleet/pipeline/store"
)

// Fetcher gets a source .blend onto this host, refusing files larger than
// MaxBytes before downloading them. Only the bot's own credentials are used.
type Fetcher struct {
	Slack SlackAPI
	// GitHub is the go-github client (with the configured token); LFSURL is
	// the Git server LFS objects are asked from, the configured GitHub's
	// host (config.Slack.GitHubLFSURL; default https://github.com),
	// HTTP downloads them, and GitHubToken authenticates the batch request.
	GitHub      *github.Client
	GitHubToken string
	LFSURL      string
	HTTP        *http.Client
	// OpenStore opens an s3:// store (bucket and prefix) with the
	// configuration's S3 settings.
	OpenStore func(ctx context.Context, uri string) (store.Store, error)
	// AllowS3 says whether s3://bucket/key may be read (slack.sources.s3_buckets);
	// nil refuses every s3:// source.
	AllowS3  func(bucket, key string) bool
	MaxBytes int64
	// Dir receives downloads (default os.TempDir()).
	Dir string
}

// TooLargeError refuses a source before it is downloaded.
type TooLargeError struct {
	Name      string
	Size, Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %s, more than the %s this bot accepts (slack.max_file_mib): render a smaller file or ask an admin to raise the limit",
		e.Name, mib(e.Size), mib(e.Max))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Fetch downloads src into a new file and returns its path and the name to
// show for it. channel is where `file` sources are looked for.
func (f *Fetcher) Fetch(ctx context.Context, src Source, channel string) (string, string, error) {
	switch src.Kind {
	case SourceS3:
		return f.fetchS3(ctx, src)
	case SourceGitHub:
		return f.fetchGitHub(ctx, src)
	case SourceChannel:
		return f.fetchChannel(ctx, src, channel)
	case SourceSlackFile:
		return f.fetchSlackFile(ctx, src, channel)
	}
	return "", "", fmt.Errorf("unknown source kind %q", src.Kind)
}

func (f *Fetcher) check(name string, size int64) error {
	if size > f.MaxBytes {
		return &TooLargeError{Name: name, Size: size, Max: f.MaxBytes}
	}
	return nil
}

// save copies r into a new .blend file, failing when it holds more than
// f.MaxBytes (a source that lied about its size).
func (f *Fetcher) save(name string, write func(io.Writer) error) (string, error) {
	dir := f.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	out, err := os.CreateTemp(dir, "framefleet-bot-*-"+filepath.Base(store.SafeName(strings.TrimSuffix(name, ".blend")))+".blend")
	if err != nil {
		return "", fmt.Errorf("create a file for the download: %w", err)
	}
	lw := &limitWriter{w: out, left: f.MaxBytes}
	err = write(lw)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && lw.over {
		err = &TooLargeError{Name: name, Size: f.MaxBytes + 1, Max: f.MaxBytes}
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

type limitWriter struct {
	w    io.Writer
	left int64
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.over = true
		return 0, errors.New("download is larger than it said")
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// SourceError is a fetch failure whose Error is safe to post in a channel;
// the cause (bucket names, S3 error codes, request IDs) goes to the log.
type SourceError struct {
	Public string
	Cause  error
}

func (e *SourceError) Error() string { return e.Public }
func (e *SourceError) Unwrap() error { return e.Cause }

func (f *Fetcher) fetchS3(ctx context.Context, src Source) (string, string, error) {
	name := src.String()
	unreadable := func(err error) error {
		return &SourceError{Public: "could not read " + name + ": check the path, or ask an admin to look at the bot's log", Cause: err}
	}
	if f.OpenStore == nil {
		return "", "", errors.New("s3:// sources are not configured on this bot")
	}
	if f.AllowS3 == nil || !f.AllowS3(src.Bucket, src.Key) {
		return "", "", &SourceError{Public: NotAllowedS3}
	}
	st, err := f.OpenStore(ctx, "s3://"+src.Bucket)
	if err != nil {
		return "", "", unreadable(fmt.Errorf("open s3://%s: %w", src.Bucket, err))
	}
	obj, err := st.Stat(ctx, src.Key)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", fmt.Errorf("%s does not exist: check the path", name)
	}
	if err != nil {
		return "", "", unreadable(fmt.Errorf("look up %s: %w", name, err))
	}
	if err := f.check(name, obj.Size); err != nil {
		return "", "", err
	}
	path, err := f.save(name, func(w io.Writer) error {
		rc, err := st.Get(ctx, src.Key)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(w, rc)
		return err
	})
	var tl *TooLargeError
	if err != nil && !errors.As(err, &tl) {
		return "", "", unreadable(fmt.Errorf("download %s: %w", name, err))
	}
	return path, name, err
}

// NotAllowedS3 refuses an s3:// source outside slack.sources.s3_buckets,
// without saying which buckets are allowed.
const NotAllowedS3 = "that S3 location is not one this bot may read: ask an admin to add it to `slack.sources.s3_buckets`, or share the .blend in the channel (`file`)"

func (f *Fetcher) fetchGitHub(ctx context.Context, src Source) (string, string, error) {
	if f.GitHub == nil {
		return "", "", errors.New("GitHub sources are not configured on this bot: set GITHUB_TOKEN where it runs")
	}
	name := src.String()
	meta, _, _, err := f.GitHub.Repositories.GetContents(ctx, src.Owner, src.Repo, src.Path, &github.RepositoryContentGetOptions{Ref: src.Ref})
	if err != nil {
		var ge *github.ErrorResponse
		if errors.As(err, &ge) && ge.Response != nil && ge.Response.StatusCode == http.StatusNotFound {
			return "", "", fmt.Errorf("%s was not found: check the owner, repository, path and ref, and that the bot's token can read the repository", name)
		}
		return "", "", fmt.Errorf("look up %s on GitHub: %w", name, err)
	}
	if meta == nil {
		return "", "", fmt.Errorf("%s is a directory: name a .blend file in it", name)
	}
	if err := f.check(name, int64(meta.GetSize())); err != nil {
		return "", "", err
	}
	u := fmt.Sprintf("repos/%s/%s/contents/%s?ref=%s", src.Owner, src.Repo, escapePath(src.Path), urlQuery(src.Ref))
	req, err := f.GitHub.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Accept", "application/vnd.github.raw+json")
	head := &headWriter{max: 1024}
	path, err := f.save(name, func(w io.Writer) error {
		_, err := f.GitHub.Do(ctx, req, io.MultiWriter(w, head))
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("download %s: %w", name, err)
	}
	// A pointer is a small text file standing in for the real object.
	ptr, ok := blend.ParseLFSPointer(head.buf.Bytes())
	if !ok || meta.GetSize() > blend.LFSPointerMaxSize || ptr.Size == 0 {
		return path, name, nil
	}
	os.Remove(path)
	if err := f.check(name, ptr.Size); err != nil {
		return "", "", err
	}
	path, err = f.fetchLFS(ctx, src, name, ptr)
	return path, name, err
}

type headWriter struct {
	buf bytes.Buffer
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// fetchLFS asks the repository's LFS server for the object (the batch API,
// basic transfer) and downloads it, checking its size and SHA-256.
func (f *Fetcher) fetchLFS(ctx context.Context, src Source, name string, ptr blend.LFSPointer) (string, error) {
	base := strings.TrimRight(f.LFSURL, "/")
	if base == "" {
		base = "https://github.com"
	}
	reqBody, _ := json.Marshal(map[string]any{
		"operation": "download", "transfers": []string{"basic"},
		"ref":     map[string]string{"name": "refs/heads/" + src.Ref},
		"objects": []map[string]any{{"oid": ptr.OID, "size": ptr.Size}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/%s/%s.git/info/lfs/objects/batch", base, src.Owner, src.Repo), bytes.NewReader(reqBody))
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.git-lfs+json")
	req.Header.Set("Content-Type", "application/vnd.git-lfs+json")
	if f.GitHubToken != "" {
		req.SetBasicAuth("x-access-token", f.GitHubToken)
	}
	resp, err := f.http().Do(req)
	if err != nil {
		return "", fmt.Errorf("ask Git LFS for %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("Git LFS batch request for %s: %s: %s", name, resp.Status, strings.TrimSpace(string(msg)))
	}
	var batch struct {
		Objects []struct {
			OID     string `json:"oid"`
			Size    int64  `json:"size"`
			Actions struct {
				Download *struct {
					Href   string            `json:"href"`
					Header map[string]string `json:"header"`
				} `json:"download"`
			} `json:"actions"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"objects"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&batch); err != nil {
		return "", fmt.Errorf("Git LFS answered something that is not a batch response: %w", err)
	}
	if len(batch.Objects) != 1 {
		return "", fmt.Errorf("Git LFS returned %d objects for %s, want 1", len(batch.Objects), name)
	}
	obj := batch.Objects[0]
	if obj.Error != nil {
		return "", fmt.Errorf("Git LFS cannot give %s: %d %s", name, obj.Error.Code, obj.Error.Message)
	}
	if obj.Actions.Download == nil {
		return "", fmt.Errorf("Git LFS gave no download for %s", name)
	}
	dl, err := http.NewRequestWithContext(ctx, http.MethodGet, obj.Actions.Download.Href, nil)
	if err != nil {
		return "", err
	}
	for k, v := range obj.Actions.Download.Header {
		dl.Header.Set(k, v)
	}
	hash := sha256.New()
	path, err := f.save(name, func(w io.Writer) error {
		resp, err := f.http().Do(dl)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("download the LFS object: %s", resp.Status)
		}
		n, err := io.Copy(io.MultiWriter(w, hash), resp.Body)
		if err == nil && n != ptr.Size {
			err = fmt.Errorf("the LFS object has %d bytes, its pointer says %d", n, ptr.Size)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("download %s from Git LFS: %w", name, err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != ptr.OID {
		os.Remove(path)
		return "", fmt.Errorf("the LFS object for %s has SHA-256 %s, its pointer says %s", name, got, ptr.OID)
	}
	return path, nil
}

func (f *Fetcher) http() *http.Client {
	if f.HTTP != nil {
		return f.HTTP
	}
	return http.DefaultClient
}

// fetchChannel downloads a .blend shared in the channel: the newest, or
// the newest with the given name.
func (f *Fetcher) fetchChannel(ctx context.Context, src Source, channel string) (string, string, error) {
	params := slack.NewGetFilesParameters()
	params.Channel, params.Count = channel, 100
	var files []slack.File
	err := withRetryAfter(ctx, sleepCtx, func() error {
		var err error
		files, _, err = f.Slack.GetFilesContext(ctx, params)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("list the files shared here: %s (the app needs the files:read scope)", slackErrorCode(err))
	}
	var pick *slack.File
	for i := range files {
		fl := &files[i]
		if !strings.HasSuffix(strings.ToLower(fl.Name), ".blend") || (src.Name != "" && fl.Name != src.Name) {
			continue
		}
		if pick == nil || fl.Created.Time().After(pick.Created.Time()) {
			pick = fl
		}
	}
	if pick == nil {
		if src.Name != "" {
			return "", "", fmt.Errorf("no file named %s is shared in this channel: share it here first, or use `file` for the newest .blend", src.Name)
		}
		return "", "", errors.New("no .blend file is shared in this channel: drop one into the channel first")
	}
	if err := f.check(pick.Name, int64(pick.Size)); err != nil {
		return "", "", err
	}
	url := pick.URLPrivateDownload
	if url == "" {
		url = pick.URLPrivate
	}
	path, err := f.save(pick.Name, func(w io.Writer) error { return f.Slack.GetFileContext(ctx, url, w) })
	if err != nil {
		return "", "", fmt.Errorf("download %s from Slack: %w", pick.Name, err)
	}
	return path, pick.Name, nil
}

// fetchSlackFile downloads one shared file by ID, when it is a .blend
// shared in channel (the shortcut names the file; nobody can make the bot
// read a file from a channel they are not in).
func (f *Fetcher) fetchSlackFile(ctx context.Context, src Source, channel string) (string, string, error) {
	var file *slack.File
	err := withRetryAfter(ctx, sleepCtx, func() error {
		var err error
		file, _, _, err = f.Slack.GetFileInfoContext(ctx, src.FileID, 0, 0)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("look up the shared file: %s (the app needs the files:read scope)", slackErrorCode(err))
	}
	shared := false
	for _, ids := range [][]string{file.Channels, file.Groups, file.IMs} {
		for _, id := range ids {
			shared = shared || id == channel
		}
	}
	if !shared {
		return "", "", errors.New("that file is not shared in this channel: share it here first")
	}
	if !strings.HasSuffix(strings.ToLower(file.Name), ".blend") {
		return "", "", fmt.Errorf("%s is not a .blend file", file.Name)
	}
	if err := f.check(file.Name, int64(file.Size)); err != nil {
		return "", "", err
	}
	url := file.URLPrivateDownload
	if url == "" {
		url = file.URLPrivate
	}
	path, err := f.save(file.Name, func(w io.Writer) error { return f.Slack.GetFileContext(ctx, url, w) })
	if err != nil {
		return "", "", fmt.Errorf("download %s from Slack: %w", file.Name, err)
	}
	return path, file.Name, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = urlPathEscape(s)
	}
	return strings.Join(parts, "/")
}

func urlPathEscape(s string) string { return (&url.URL{Path: s}).EscapedPath() }
func urlQuery(s string) string      { return url.QueryEscape(s) }
