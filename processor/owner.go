package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triggerd/triggerd/schemas"
)

// Who owns a customer, for the admin API, without any membership of our
// own: the Kafka group protocol already knows.
//
//   - A customer's partition is the producers' partitioner
//     (kafka.partitioner) applied to its ID (CustomerPartition), since the
//     inputs are keyed by customer ID.
//   - Every member advertises its admin address in the user data of its
//     group member metadata (copartitionedBalancer.JoinGroupMetadata).
//   - DescribeGroups returns every member's metadata and the assignment the
//     leader gave it, so any instance can map a partition to the member
//     that holds it and to that member's admin address (PartitionOwner).
//
// Whether this instance answers for a partition is decided locally, not by
// the group's view: it serves a partition once its worker exists (the state
// is restored), and stops when the worker is gone (Serves).

// memberUserData is what a member advertises in its group metadata. JSON,
// so that a later release can add fields that this one ignores.
type memberUserData struct {
	Admin string `json:"admin,omitempty"`
}

func encodeUserData(admin string) []byte {
	if admin == "" {
		return nil
	}
	b, _ := json.Marshal(memberUserData{Admin: admin}) // cannot fail: one string field
	return b
}

// decodeUserData reads a member's advertisement; anything else (another
// program's user data, an older release's none) advertises nothing.
func decodeUserData(b []byte) memberUserData {
	var u memberUserData
	if len(b) > 0 {
		_ = json.Unmarshal(b, &u)
	}
	return u
}

// PartitionOf is Kafka's default partitioner for a record key: the murmur2
// hash of the key, made positive, modulo the partition count. Every input
// is keyed by customer ID and co-partitioned, so this is the partition of
// the customer's state. n must be > 0.
func PartitionOf(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed, as the Java client's
// Utils.murmur2 computes it (little-endian blocks, the tail mixed in before
// the final avalanche).
func murmur2(b []byte) uint32 {
	const (
		seed = 0x9747b28c
		mul  = 0x5bd1e995
		rot  = 24
	)
	h := uint32(seed) ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= mul
		k ^= k >> rot
		k *= mul
		h = h*mul ^ k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= mul
	}
	h ^= h >> 13
	h *= mul
	h ^= h >> 15
	return h
}

// CustomerPartition is the partition of customer id among n (n > 0) under
// the configured partitioner: where the producers put its records, so
// where its state is.
func (p *Processor) CustomerPartition(id schemas.CustomerID, n int32) int32 {
	return p.cfg.Partitioner.Partition([]byte(id), n)
}

// Partitions returns the input partition count, or 0 before the processor
// has checked the topics.
func (p *Processor) Partitions() int32 { return p.partitions.Load() }

// ProfilesTopic is the profile input topic (where erase events go).
func (p *Processor) ProfilesTopic() string { return p.cfg.Topics.Profiles }

// InstanceID is the processor's group instance ID.
func (p *Processor) InstanceID() string { return p.cfg.InstanceID }

// Serves reports whether this instance owns partition part and has its
// state restored: its committed state in the store is the partition's
// current state as of the last committed cycle.
func (p *Processor) Serves(part int32) bool {
	p.serving.Lock()
	defer p.serving.Unlock()
	return p.serving.parts[part]
}

func (p *Processor) setServing(part int32, on bool) {
	p.serving.Lock()
	defer p.serving.Unlock()
	if on {
		if p.serving.parts == nil {
			p.serving.parts = map[int32]bool{}
		}
		p.serving.parts[part] = true
	} else {
		delete(p.serving.parts, part)
	}
}

func (p *Processor) clearServing() {
	p.serving.Lock()
	defer p.serving.Unlock()
	clear(p.serving.parts)
}

// Owner is the group member that a partition is assigned to.
type Owner struct {
	MemberID   string
	InstanceID string // "" without static membership
	Admin      string // its advertised admin address; "" if it advertises none
	Self       bool   // this instance
}

// PartitionOwner asks the group coordinator which member holds partition
// part (DescribeGroups: each member's metadata and assignment). found is
// false when no member holds it right now (a rebalance is moving it, or
// the group is empty).
func (p *Processor) PartitionOwner(ctx context.Context, part int32) (o Owner, found bool, err error) {
	side, err := p.sideClient()
	if err != nil {
		return o, false, err
	}
	groups, err := side.adm.DescribeGroups(ctx, p.cfg.Group)
	if err != nil {
		return o, false, fmt.Errorf("processor: describing group %s: %w", p.cfg.Group, err)
	}
	g, ok := groups[p.cfg.Group]
	if !ok {
		return o, false, fmt.Errorf("processor: group %s was not described", p.cfg.Group)
	}
	if g.Err != nil {
		return o, false, fmt.Errorf("processor: describing group %s: %w", p.cfg.Group, g.Err)
	}
	// Partition p of every input goes to one member (the balancer), so
	// the first input's assignment is enough.
	topic := p.cfg.Inputs()[0]
	for _, m := range g.Members {
		assigned, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range assigned.Topics {
			if t.Topic != topic || !slices.Contains(t.Partitions, part) {
				continue
			}
			o = Owner{MemberID: m.MemberID}
			if m.InstanceID != nil {
				o.InstanceID = *m.InstanceID
			}
			if meta, ok := m.Join.AsConsumer(); ok {
				o.Admin = decodeUserData(meta.UserData).Admin
			}
			o.Self = o.InstanceID != "" && o.InstanceID == p.cfg.InstanceID
			return o, true, nil
		}
	}
	return o, false, nil
}

// EraseReceipt says where an erase event was written.
type EraseReceipt struct {
	EventID   string
	Partition int32
	Offset    int64
}

// ProduceErase writes a profile_erase event for customer id to the profile
// topic, keyed by the customer, and returns once Kafka has it. It does not
// erase anything itself: the worker that owns the customer's partition does
// when it processes the event (erase.go), in order with the customer's
// other events and in a transaction with the changelog tombstones and the
// erased record. So any instance can take an erase request, and a request
// that returned has been durably queued even if the owner is down.
func (p *Processor) ProduceErase(ctx context.Context, id schemas.CustomerID) (EraseReceipt, error) {
	if id == "" {
		return EraseReceipt{}, errors.New("processor: erase: empty customer ID")
	}
	side, err := p.sideClient()
	if err != nil {
		return EraseReceipt{}, err
	}
	enc, err := side.profileEncoder(ctx, p)
	if err != nil {
		return EraseReceipt{}, err
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	now := p.clock().UTC().Truncate(time.Millisecond)
	ev := schemas.Event{Source: schemas.SourceProfile, ID: "erase-" + hex.EncodeToString(rnd[:]), Customer: id,
		Type: schemas.ProfileErase, Time: now}
	val, err := enc.Encode(nil, &ev)
	if err != nil {
		return EraseReceipt{}, fmt.Errorf("processor: erase: encoding the event: %w", err)
	}
	// The side client hashes keys with the configured partitioner, so
	// the event goes to the partition the customer's other records are
	// on, which is where its state is.
	r := &kgo.Record{Topic: p.cfg.Topics.Profiles, Key: []byte(id), Value: val, Timestamp: now}
	if err := side.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return EraseReceipt{}, fmt.Errorf("processor: erase: producing to %s: %w", p.cfg.Topics.Profiles, err)
	}
	return EraseReceipt{EventID: ev.ID, Partition: r.Partition, Offset: r.Offset}, nil
}

// side is a plain Kafka client for the admin API (group descriptions,
// erase events), apart from the session's transactional one: an admin
// request must not touch the transaction, and it outlives a session that
// Run replaces.
type side struct {
	cl  *kgo.Client
	adm *kadm.Client

	mu  sync.Mutex
	enc *schemas.EventEncoder // the profile topic's, made on first use
}

func (s *side) profileEncoder(ctx context.Context, p *Processor) (*schemas.EventEncoder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc != nil {
		return s.enc, nil
	}
	enc, err := schemas.NewEventEncoder(ctx, schemas.SourceProfile, p.cfg.Encodings.Profiles, p.registry,
		schemas.ValueSubject(p.cfg.Topics.Profiles))
	if err != nil {
		return nil, fmt.Errorf("processor: erase: profile encoder: %w", err)
	}
	s.enc = enc
	return enc, nil
}

var errStopped = errors.New("processor: not running")

// sideClient returns the side client, creating it on first use while Run
// runs; Run closes it when it returns.
func (p *Processor) sideClient() (*side, error) {
	p.admin.Lock()
	defer p.admin.Unlock()
	if !p.admin.running {
		return nil, errStopped
	}
	if p.admin.side != nil {
		return p.admin.side, nil
	}
	opts, err := baseOpts(&p.cfg, p.log)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ClientID("triggerd-admin"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(p.cfg.Partitioner.kgoHasher())))...)
	if err != nil {
		return nil, fmt.Errorf("processor: admin kafka client: %w", err)
	}
	p.admin.side = &side{cl: cl, adm: kadm.NewClient(cl)}
	return p.admin.side, nil
}

// setRunning marks Run as running or, when it returns, closes the side
// client.
func (p *Processor) setRunning(on bool) {
	p.admin.Lock()
	defer p.admin.Unlock()
	p.admin.running = on
	if !on && p.admin.side != nil {
		p.admin.side.cl.Close()
		p.admin.side = nil
	}
}
