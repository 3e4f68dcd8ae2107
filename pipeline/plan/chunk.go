package plan

// MaxAutoChunk caps automatic chunks so a retry after a Spot reclaim or a
// crash never has much to redo, and progress stays fine-grained.
const MaxAutoChunk = 50

// AutoChunkSize picks a chunk size for n frames on `parallel` workers: as few
// chunks as keep every worker busy (each Blender start costs seconds), split
// further only when chunks would exceed MaxAutoChunk, and never more than
// MaxArraySize chunks.
func AutoChunkSize(n, parallel int) int {
	if n <= 0 {
		return 1
	}
	parallel = max(parallel, 1)
	perWorker := ceilDiv(n, parallel)
	rounds := ceilDiv(perWorker, MaxAutoChunk)
	size := ceilDiv(n, parallel*rounds)
	return max(size, ceilDiv(n, MaxArraySize), 1)
}

// FitChunkSize raises a requested chunk size until the plan fits AWS Batch's
// array limit: a user asking for 1-frame chunks of 50,000 frames is re-planned,
// never rejected by AWS.
func FitChunkSize(n, requested int) int {
	return max(requested, ceilDiv(n, MaxArraySize), 1)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
