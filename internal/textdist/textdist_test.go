package textdist

import "testing"

func TestLevenshtein(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"job_queue", "job_queu", 1}, {"same", "same", 0}} {
		if got := Levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	known := []string{"BucketEncryption", "BucketName", "Tags"}
	for _, tt := range []struct{ word, want string }{
		{"BucketEncription", "BucketEncryption"},
		{"bucketname", "BucketName"},
		{"Nothing", ""},
	} {
		if got := Closest(tt.word, known, 4); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}
