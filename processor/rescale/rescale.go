package rescale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
)

// Options are a rescale's settings besides the configuration.
type Options struct {
	// To is the new partition count.
	To int32
	// Progress receives a progress line every ProgressEvery (stderr in
	// the command); nil: none.
	Progress      io.Writer
	ProgressEvery time.Duration // 0: 1s
	// ChunkRecords is how many records are written between two progress
	// commits (0: 50,000).
	ChunkRecords int
	// OffsetsEvery is how many records of a new partition are written
	// between two offsets records (0: 10,000): an at-least-once restore
	// holds a batch (up to its offsets record) in memory.
	OffsetsEvery int
	// OnCommit, if set, is called after each progress commit (tests
	// interrupt the rescale there).
	OnCommit func()
	Log      *zap.Logger
}

// Setting is a configuration change the new layout needs.
type Setting struct {
	Path, Value string
}

// Result is what a rescale did.
type Result struct {
	From, To                   int32
	SourceChangelog, Changelog string
	// Customers and Timers are the customer records and pending timers
	// the new changelog holds.
	Customers, Timers int64
	// Held counts the held input records written to the new input
	// topics (held.go).
	Held int64
	// Carried counts the records of the raw inputs' internal topics the
	// workers had not consumed, written to the recreated ones (carry.go).
	Carried int64
	// Written counts the records this run wrote (a rerun writes only what
	// the interrupted run had not confirmed).
	Written int64
	Elapsed time.Duration
	// AlreadyDone: an earlier run finished; this one wrote nothing.
	AlreadyDone bool
	// Settings are the configuration changes to start the new layout with.
	Settings []Setting
	// Moved maps each co-partitioned input to its new topic: its
	// producers must write there (with the same partitioner).
	Moved map[string]string
	// Recreated are the raw inputs' internal topics, recreated with To
	// partitions.
	Recreated []string
}

// Summary is the one-line summary: customers, timers, the counts, the
// elapsed time and the rate in customers per second.
func (r Result) Summary() string {
	secs := r.Elapsed.Seconds()
	return fmt.Sprintf("rescale: customers=%d timers=%d held=%d carried=%d from=%d to=%d elapsed=%s rate=%.0f/s",
		r.Customers, r.Timers, r.Held, r.Carried, r.From, r.To, r.Elapsed.Round(time.Millisecond), float64(r.Customers)/max(secs, 1e-9))
}

// RefusedError says why the deployment cannot be rescaled now and what to
// do; nothing was written to the new changelog.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "rescale refused: " + e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// ProgressGroup is the consumer group that holds the progress marker of
// the rescale from cfg's changelog (see doc.go): one per new changelog, so
// that the next rescale, whose source is this one's destination, never
// reads this one's done marker as its progress.
func ProgressGroup(cfg processor.Config) string {
	return cfg.Group + "-rescale-" + NextName(cfg.Topics.Changelog)
}

// input is one input the workers consume, before and after.
type input struct {
	setting  string // under kafka.topics
	old, new string
	raw      bool // the internal topic of a raw input: recreated, same name
}

type run struct {
	cfg    processor.Config
	opt    Options
	log    *zap.Logger
	cl     *kgo.Client
	adm    *kadm.Client
	base   []kgo.Opt
	src    string
	dst    string
	n, m   int32
	inputs []input
	start  time.Time
}

// Run rescales the deployment cfg describes (stopped) to opt.To partitions.
// A *RefusedError says what to do first; any other error leaves a state a
// rerun finishes from.
func Run(ctx context.Context, cfg processor.Config, opt Options) (Result, error) {
	if opt.To <= 0 {
		return Result{}, fmt.Errorf("rescale: the new partition count must be > 0, not %d", opt.To)
	}
	if opt.ChunkRecords <= 0 {
		opt.ChunkRecords = 50_000
	}
	if opt.OffsetsEvery <= 0 {
		opt.OffsetsEvery = 10_000
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = time.Second
	}
	log := opt.Log
	if log == nil {
		log = zap.NewNop()
	}
	base, err := processor.ClientOptions(cfg, log)
	if err != nil {
		return Result{}, err
	}
	// The client answers a metadata request from its cache while it is
	// younger than the minimum age (5s by default): a deletion or a
	// creation the rescale waits for would show 5s late, each time.
	cl, err := kgo.NewClient(append(base, kgo.ClientID("triggerd-rescale"), kgo.MetadataMinAge(50*time.Millisecond))...)
	if err != nil {
		return Result{}, fmt.Errorf("rescale: kafka client: %w", err)
	}
	defer cl.Close()
	r := &run{cfg: cfg, opt: opt, log: log, cl: cl, adm: kadm.NewClient(cl), base: base,
		src: cfg.Topics.Changelog, dst: NextName(cfg.Topics.Changelog), m: opt.To, start: time.Now()}
	raw := map[string]bool{}
	for _, t := range cfg.RawInputs() {
		raw[cfg.RepartitionTopic(t)] = true
	}
	settings := processor.InputSettings()
	for i, t := range cfg.Inputs() {
		in := input{setting: settings[i], old: t, new: NextName(t), raw: raw[t]}
		if in.raw {
			in.new = t
		}
		r.inputs = append(r.inputs, in)
	}
	return r.do(ctx)
}

func (r *run) do(ctx context.Context) (Result, error) {
	res := Result{To: r.m, SourceChangelog: r.src, Changelog: r.dst, Moved: map[string]string{}}
	for _, in := range r.inputs {
		if in.raw {
			res.Recreated = append(res.Recreated, in.old)
		} else {
			res.Moved[in.old] = in.new
		}
	}
	res.Settings = r.settings()
	n, err := r.partitions(ctx, r.src)
	if err != nil {
		return res, err
	}
	if n == 0 {
		return res, refused("the changelog %q (topics.changelog) does not exist", r.src)
	}
	r.n, res.From = n, n
	done, meta, err := r.finished(ctx)
	if err != nil {
		return res, err
	}
	if done {
		res.AlreadyDone = true
		fmt.Sscanf(meta, "customers=%d timers=%d held=%d carried=%d", &res.Customers, &res.Timers, &res.Held, &res.Carried)
		res.Elapsed = time.Since(r.start)
		return res, nil
	}
	if n == r.m {
		return res, refused("the changelog %q already has %d partitions", r.src, n)
	}
	if err := r.checkStopped(ctx); err != nil {
		return res, err
	}
	if err := r.createInputs(ctx); err != nil {
		return res, err
	}
	if err := r.checkDrained(ctx); err != nil {
		return res, err
	}
	if err := r.createChangelog(ctx); err != nil {
		return res, err
	}
	from, err := r.progress(ctx)
	if err != nil {
		return res, err
	}
	r.say("checked; reading %s", r.src)
	sc, err := r.scan(ctx, from)
	if err != nil {
		return res, err
	}
	held, err := r.heldRecords(sc)
	if err != nil {
		return res, err
	}
	offs, err := sc.merged(r)
	if err != nil {
		return res, err
	}
	res.Customers, res.Timers = sc.live()
	if res.Written, err = r.copy(ctx, sc, from, offs); err != nil {
		return res, err
	}
	r.say("copied the state to %s; staging the internal topics' unconsumed records", r.dst)
	staged, err := r.stageCarry(ctx)
	res.Written += staged
	if err != nil {
		return res, err
	}
	if err := r.recreateInternal(ctx); err != nil {
		return res, err
	}
	r.say("staged %d records; internal topics recreated", staged)
	carried, err := r.carriedRecords(ctx)
	if err != nil {
		return res, err
	}
	res.Held, res.Carried = int64(len(held)), int64(len(carried))
	r.say("writing back %d held and %d carried records", len(held), len(carried))
	wrote, err := r.writeHeld(ctx, order(append(held, carried...)))
	res.Written += wrote
	if err != nil {
		return res, err
	}
	if err := r.positionWorkers(ctx); err != nil {
		return res, err
	}
	if err := r.markDone(ctx, res); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(r.start)
	return res, nil
}

// say prints a step's line with the time since the start.
func (r *run) say(format string, args ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "rescale: %s: "+format+"\n", append([]any{time.Since(r.start).Round(time.Millisecond)}, args...)...)
	}
}

// settings are the configuration changes of the new layout.
func (r *run) settings() []Setting {
	s := []Setting{{Path: "kafka.topics.changelog", Value: r.dst}}
	for _, in := range r.inputs {
		if !in.raw {
			s = append(s, Setting{Path: "kafka.topics." + in.setting, Value: in.new})
		}
	}
	if r.cfg.Repartition.Partitions > 0 {
		s = append(s, Setting{Path: "kafka.repartition.partitions", Value: fmt.Sprint(r.m)})
	}
	return s
}

// partitions returns topic's partition count, 0 when it does not exist.
func (r *run) partitions(ctx context.Context, topic string) (int32, error) {
	d, err := r.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("rescale: listing topic %q: %w", topic, err)
	}
	td, ok := d[topic]
	if !ok || td.Err != nil {
		return 0, nil
	}
	return int32(len(td.Partitions)), nil
}

// checkStopped refuses while the workers' group (or the repartition
// stage's) has members: the state would change under the copy.
func (r *run) checkStopped(ctx context.Context) error {
	groups := []string{r.cfg.Group}
	if len(r.cfg.RawInputs()) > 0 {
		groups = append(groups, r.cfg.RepartitionGroup())
	}
	described, err := r.describeGroups(ctx, groups)
	if err != nil {
		return fmt.Errorf("rescale: describing the groups %v: %w", groups, err)
	}
	for _, g := range groups {
		if d, ok := described[g]; ok && len(d.Members) > 0 {
			return refused("the consumer group %q has %d member(s) (state %s): stop the deployment (every instance) and run again; "+
				"a stopped instance with static membership (instance_id) stays a member until kafka.session_timeout has passed",
				g, len(d.Members), d.State)
		}
	}
	return nil
}

// waitCreated creates topic with parts partitions and configs, retrying
// while a deletion of the same name completes, and waits until the
// metadata shows it.
func (r *run) waitCreated(ctx context.Context, topic string, parts int32, configs map[string]*string) error {
	for {
		n, err := r.partitions(ctx, topic)
		if err != nil {
			return err
		}
		if n == parts {
			return nil
		}
		if n != 0 {
			return fmt.Errorf("rescale: topic %q has %d partitions, not %d", topic, n, parts)
		}
		resp, err := r.adm.CreateTopic(ctx, parts, r.cfg.ReplicationFactor, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("rescale: creating topic %q: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// finished reports whether the done marker is committed: the progress
// group's position on the new changelog.
func (r *run) finished(ctx context.Context) (bool, string, error) {
	offs, err := r.fetchOffsets(ctx, ProgressGroup(r.cfg))
	if err != nil {
		return false, "", fmt.Errorf("rescale: reading the progress of group %q: %w", ProgressGroup(r.cfg), err)
	}
	o, ok := offs.Lookup(r.dst, 0)
	return ok && o.Err == nil && o.At >= 0, o.Metadata, nil
}

// markDone commits the new changelog's end offsets in the progress group:
// the rescale is complete. The metadata keeps the counts for a rerun's
// summary.
func (r *run) markDone(ctx context.Context, res Result) error {
	ends, err := r.adm.ListEndOffsets(ctx, r.dst)
	if err != nil {
		return fmt.Errorf("rescale: end offsets of %q: %w", r.dst, err)
	}
	meta := fmt.Sprintf("customers=%d timers=%d held=%d carried=%d", res.Customers, res.Timers, res.Held, res.Carried)
	var offs kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) {
		offs.Add(kadm.Offset{Topic: r.dst, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1, Metadata: meta})
	})
	return r.commit(ctx, ProgressGroup(r.cfg), offs)
}

func (r *run) commit(ctx context.Context, group string, offs kadm.Offsets) error {
	err := r.withCoordinator(ctx, "committing offsets of group "+group, func() error {
		resp, err := r.adm.CommitOffsets(ctx, group, offs)
		if err == nil {
			err = resp.Error()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("rescale: committing offsets of group %q: %w", group, err)
	}
	return nil
}

// progress returns, per old changelog partition, the offset from which the
// copy writes: what an interrupted run confirmed, else 0.
func (r *run) progress(ctx context.Context) (map[int32]int64, error) {
	offs, err := r.fetchOffsets(ctx, ProgressGroup(r.cfg))
	if err != nil {
		return nil, fmt.Errorf("rescale: reading the progress of group %q: %w", ProgressGroup(r.cfg), err)
	}
	from := map[int32]int64{}
	for p := range r.n {
		if o, ok := offs.Lookup(r.src, p); ok && o.Err == nil && o.At > 0 {
			from[p] = o.At
		}
	}
	return from, nil
}

// fetchOffsets returns the group's committed offsets; none for a group the
// cluster does not know.
func (r *run) fetchOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	var offs kadm.OffsetResponses
	err := r.withCoordinator(ctx, "reading the offsets of group "+group, func() error {
		var err error
		offs, err = r.adm.FetchOffsets(ctx, group)
		return err
	})
	if errors.Is(err, kerr.GroupIDNotFound) {
		return kadm.OffsetResponses{}, nil
	}
	return offs, err
}
