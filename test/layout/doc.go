// Package layout holds the test that keeps the import directions of
// docs/style.md: schemas at the bottom; rules and state on schemas; processor on
// those; cmd on top; nothing imports cmd or test.
package layout
