// Package textdist finds the known word closest to a misspelt one, for
// "did you mean …?" in error messages.
package textdist

import "strings"

// Closest returns the candidate nearest to word (case-insensitively) when it
// is fewer than maxDist edits away, or "" when none is that close.
func Closest(word string, candidates []string, maxDist int) string {
	best, bestDist := "", maxDist
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if d := Levenshtein(lw, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Levenshtein is the edit distance between a and b, in bytes.
func Levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
