// Package script runs rule scripts: files in the cockroachdb/datadriven
// format that feed events to a rule set, advance a virtual clock, and show
// the triggers, timers and customer state that result. The project's own
// rule tests (rules/testdata) and "triggerd rules test" share this runner,
// so a rule author's script and the project's tests mean the same thing.
//
// A script is a list of directives, each followed by "----" and the output
// it must produce:
//
//	event alice add_to_cart product=p1 qty=2 price=1250
//	----
//	ok
//
//	advance 1h
//	----
//	trigger alice cart_abandoned v1 stage=1 email due=2026-03-01T11:00:00Z items=1 value=25.00 EUR cart_items=1 cart_value="25.00 EUR"
//
// Directives:
//
//	rules [example|example-without-policy|cart-only]
//	                              replace the rule set (YAML as input, or a
//	                              built-in); customers and timers are kept,
//	                              as in a hot reload
//	clock TIME                    set the clock (RFC 3339), firing timers due on the way
//	event CUST TYPE [k=v...]      one event at the current time; keys: id, at
//	                              (+30m, -5m or RFC 3339), product, qty, price,
//	                              amount, currency (EUR), order, country,
//	                              payment, card, coupon, expiry (+3d or RFC
//	                              3339), service_date, contract_end, session,
//	                              device, source, prop.NAME
//	profile CUST [k=v...]         a profile_update: birthday, signup, tz,
//	                              country, contract_end, optin=CH, optout=CH;
//	                              id, at as for event
//	advance DURATION              move the clock (3d, 1h30m), firing due timers
//	                              in due order
//	timers [CUST]                 the pending timers
//	state CUST                    the customer record
//
// An event or profile is first checked as the decoders check a record
// (schemas.ValidateEvent), then against the rules file's events catalogue;
// one that fails is not applied and prints as
//
//	dead-letter alice e3 add_to_cart reason=bad_field field=quantity
//
// (an add_to_cart needs product and qty of at least 1; see the README's
// input contract).
//
// The contact policy's decisions print as
//
//	suppressed alice welcome v1 stage=2 email due=... reason=cap policy=email_7d
//	deferred alice welcome v1 stage=2 email due=... reason=quiet_hours policy=quiet_hours until=...
//
// and "state" shows the contact history and the unanswered count.
//
// The clock starts at 2026-03-01T10:00:00Z. Times print in UTC.
package script
