package rules

import "github.com/triggerd/triggerd/schemas"

// EvalError is an expression that failed at run time (Actions.Errors): the
// rule, which of its expressions, and the error from CEL. The error text
// may quote values of the event or the customer (a conversion error names
// the string it could not convert), so a caller that logs at info level or
// above logs Rule and Expression, and Err only at debug level.
type EvalError struct {
	Rule       schemas.RuleID
	Expression string // which expression of the rule: "when", "threshold.value", ...
	Err        error
}

func (e *EvalError) Error() string {
	return "rules: rule " + string(e.Rule) + ", " + e.Expression + ": " + e.Err.Error()
}

func (e *EvalError) Unwrap() error { return e.Err }
