package lfstest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/framefleet/framefleet/internal/lfstest"
)

func post(t *testing.T, srv *lfstest.Server, ctype, body string, auth bool) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.RepoURL("o/r")+"/info/lfs/objects/batch", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", lfstest.MediaType)
	if auth {
		req.SetBasicAuth("u", "p")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestBatchAPI(t *testing.T) {
	srv := lfstest.Start(t, lfstest.WithBasicAuth("u", "p"))
	data := []byte("scene bytes")
	oid := srv.Add(data)
	missing := lfstest.OID([]byte("nobody stored this"))
	body := `{"operation":"download","transfers":["basic"],"objects":[{"oid":"` + oid + `","size":11},{"oid":"` + missing + `","size":3}]}`

	if resp, _ := post(t, srv, lfstest.MediaType, body, false); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("LFS-Authenticate") == "" {
		t.Errorf("no credentials: %d, LFS-Authenticate %q; want 401 with the header", resp.StatusCode, resp.Header.Get("LFS-Authenticate"))
	}
	if resp, _ := post(t, srv, "application/json", body, true); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("plain JSON content type: %d, want 415", resp.StatusCode)
	}
	resp, out := post(t, srv, lfstest.MediaType, body, true)
	if resp.StatusCode != http.StatusOK || out["transfer"] != "basic" {
		t.Fatalf("batch: %d %v", resp.StatusCode, out)
	}
	objs := out["objects"].([]any)
	first, second := objs[0].(map[string]any), objs[1].(map[string]any)
	href := first["actions"].(map[string]any)["download"].(map[string]any)["href"].(string)
	if code := second["error"].(map[string]any)["code"]; code != float64(404) {
		t.Errorf("missing object: error code %v, want 404 inside the object", code)
	}
	req, _ := http.NewRequest(http.MethodGet, href, nil)
	req.SetBasicAuth("u", "p")
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(b, data) {
		t.Errorf("download gave %q, want %q", b, data)
	}

	// Upload: a PUT whose content does not match the object id is refused.
	up := `{"operation":"upload","transfers":["basic"],"objects":[{"oid":"` + missing + `","size":18}]}`
	_, out = post(t, srv, lfstest.MediaType, up, true)
	put := out["objects"].([]any)[0].(map[string]any)["actions"].(map[string]any)["upload"].(map[string]any)["href"].(string)
	for _, tc := range []struct {
		body string
		want int
	}{{"something else", http.StatusUnprocessableEntity}, {"nobody stored this", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPut, put, strings.NewReader(tc.body))
		req.SetBasicAuth("u", "p")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("PUT %q: %d, want %d", tc.body, resp.StatusCode, tc.want)
		}
	}
	if _, ok := srv.Object(missing); !ok {
		t.Error("the uploaded object is not stored")
	}
}
