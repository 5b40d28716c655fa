package state

import (
	"github.com/triggerd/triggerd/schemas"
)

// Field numbers of schemas.Cart and schemas.Item (an item is also a field of
// a deferred trigger, codec_timers.go).
const (
	cartItem      = 1 // nested item, repeated
	cartUpdatedAt = 2 // time
	cartLastEvent = 3 // string

	itemProductID = 1 // string
	itemQuantity  = 2 // varint
	itemUnitPrice = 3 // money
)

var (
	cartFields = newFieldTable(bytesField(cartItem), bytesField(cartUpdatedAt), bytesField(cartLastEvent))
	itemFields = newFieldTable(bytesField(itemProductID), varintField(itemQuantity), bytesField(itemUnitPrice))
)

// appendCart writes a non-empty cart as the nested field field.
func appendCart(b []byte, field int, cart *schemas.Cart, base timeBase) []byte {
	if len(cart.Items) == 0 && cart.UpdatedAt.IsZero() && cart.LastEvent == "" {
		return b
	}
	b, at := beginNested(b, field)
	for i := range cart.Items {
		b = appendItem(b, cartItem, &cart.Items[i])
	}
	b = base.appendCTimeField(b, cartUpdatedAt, cart.UpdatedAt)
	if cart.LastEvent != "" {
		b = appendStringField(b, cartLastEvent, cart.LastEvent)
	}
	return endNested(b, at)
}

// appendItem writes it as the nested field field. An item has no times and
// no names, so its bytes are the same in every record.
func appendItem(b []byte, field int, it *schemas.Item) []byte {
	b, at := beginNested(b, field)
	if it.ProductID != "" {
		b = appendStringField(b, itemProductID, it.ProductID)
	}
	if it.Quantity != 0 {
		b = appendIntField(b, itemQuantity, int64(it.Quantity))
	}
	if it.UnitPrice != (schemas.Money{}) {
		b = appendMoneyField(b, itemUnitPrice, it.UnitPrice)
	}
	return endNested(b, at)
}

// decodeCart decodes into cart, which resetCustomer has emptied (its items
// keep their capacity and old values, the hints).
func decodeCart(r reader, cart *schemas.Cart) error {
	for r.next(cartFields) {
		switch r.field {
		case cartItem:
			v := r.bytes()
			if r.err != nil {
				break
			}
			cart.Items = grow(cart.Items)
			r.failIf(decodeItem(v, &cart.Items[len(cart.Items)-1]))
		case cartUpdatedAt:
			cart.UpdatedAt = r.time()
		case cartLastEvent:
			cart.LastEvent = string(r.bytes())
		}
	}
	return r.err
}

// decodeItem decodes into it, a reused slot whose old strings are hints.
func decodeItem(b []byte, it *schemas.Item) error {
	old := *it
	*it = schemas.Item{}
	r := reader{b: b}
	for r.next(itemFields) {
		switch r.field {
		case itemProductID:
			it.ProductID = str(r.bytes(), old.ProductID)
		case itemQuantity:
			it.Quantity = int32(r.varint())
		case itemUnitPrice:
			r.money(&it.UnitPrice, old.UnitPrice.Currency)
		}
	}
	return r.err
}
