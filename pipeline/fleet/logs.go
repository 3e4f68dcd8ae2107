package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/smithy-go"

	"github.com/framefleet/framefleet/pipeline/batch"
	"github.com/framefleet/framefleet/pipeline/store"
)

// BatchLogGroup is where AWS Batch's default awslogs driver writes every
// job's output, one stream per attempt (named in the attempt's details),
// unless batch.log_group names another group.
const BatchLogGroup = batch.DefaultLogGroup

// maxStoredLog bounds what is read of a stored log tail (workers store a tail, not the whole log).
const maxStoredLog = 1 << 20

// LogLine is one line of a CloudWatch Logs stream.
type LogLine struct {
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
}

// logEventsAPI is the one CloudWatch Logs call framefleet makes.
type logEventsAPI interface {
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

// StoredLog is the tail of Blender's log the worker stored for chunk
// (store.ChunkLogKey); an error wrapping store.ErrNotFound when there is none.
func (f *Fleet) StoredLog(ctx context.Context, runID string, chunk int) (string, error) {
	key := store.ChunkLogKey(runID, chunk)
	r, err := f.Store.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("chunk %d's log %s: %w", chunk, key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxStoredLog))
	if err != nil {
		return "", fmt.Errorf("read chunk %d's log %s: %w", chunk, key, err)
	}
	return string(b), nil
}

// LogGroup is the CloudWatch Logs group the Batch workers write to: the
// configured batch.log_group, else Batch's default.
func (f *Fleet) LogGroup() string {
	if g := f.Config.Batch.LogGroup; g != "" {
		return g
	}
	return BatchLogGroup
}

// StreamTail is the newest lines (at most 10,000) of a Batch attempt's
// CloudWatch Logs stream in LogGroup, oldest first.
func (f *Fleet) StreamTail(ctx context.Context, stream string, lines int) ([]LogLine, error) {
	if stream == "" {
		return nil, errors.New("no log stream: Batch names one only once an attempt has started")
	}
	api, err := f.logsAPI(ctx)
	if err != nil {
		return nil, err
	}
	lines = min(max(lines, 1), 10000)
	out, err := api.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName:  aws.String(f.LogGroup()),
		LogStreamName: aws.String(stream),
		Limit:         aws.Int32(int32(lines)),
		StartFromHead: aws.Bool(false), // the newest events: a failure is at the end
	})
	if err != nil {
		return nil, fmt.Errorf("CloudWatch Logs stream %s in %s: %w%s", stream, f.LogGroup(), err, logsFix(err, f.LogGroup()))
	}
	res := make([]LogLine, 0, len(out.Events))
	for _, e := range out.Events {
		res = append(res, LogLine{Time: time.UnixMilli(aws.ToInt64(e.Timestamp)).UTC(), Message: strings.TrimRight(aws.ToString(e.Message), "\n")})
	}
	return res, nil
}

// logsFix says what to do about a failed GetLogEvents.
func logsFix(err error, group string) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	switch ae.ErrorCode() {
	case "ResourceNotFoundException":
		return ": the stream is gone (the log group's retention expired it) or the job definition logs elsewhere (logConfiguration)"
	case "AccessDeniedException", "AccessDenied":
		return ": your credentials need logs:GetLogEvents on " + group
	}
	return ""
}

func (f *Fleet) logsAPI(ctx context.Context) (logEventsAPI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logs != nil {
		return f.logs, nil
	}
	awsCfg, err := f.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	f.logs = cloudwatchlogs.NewFromConfig(awsCfg)
	return f.logs, nil
}
