// Package admin is the processor's admin API: an HTTP server, apart from
// the ops endpoint, for support and privacy teams to inspect a customer's
// state, explain the last decisions about it, and erase it; and the client
// the CLI uses ("triggerd state get|explain|erase").
//
// Every request needs the bearer token (401 otherwise); writes (erase)
// need the server to allow them (403 otherwise). The server answers for the
// customers of the partitions its instance owns and has restored; for any
// other customer it redirects (307) to the owner's advertised admin
// address, which it learns from the Kafka group (processor.PartitionOwner),
// or says with 503 why nobody can answer right now.
//
// Reads come from the committed state in Pebble (state.Store.ReadCustomer),
// never from the partition worker's handle: the worker owns its
// state.Partition without locks, and a read through the store's snapshot
// sees whole committed batches only. The alternative, handing the request
// to the worker between cycles, would give the same answer with a channel
// in the hot loop and a request stuck behind a long cycle or restore.
//
// An erase is not done here: the server writes a profile_erase event to
// the profile topic (processor.ProduceErase) and answers 202. The owner
// erases when it processes the event, in order with the customer's other
// events and inside its transaction, exactly as for an erase event sent by
// another system. So every instance can take an erase (no redirect), and
// there is one erase path to test and to trust.
package admin
