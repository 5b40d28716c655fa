package state

import (
	"slices"

	"github.com/triggerd/triggerd/schemas"
)

// Field numbers of schemas.Profile.
const (
	profBirthday    = 1 // date
	profSignupDate  = 2 // date
	profTimeZone    = 3 // string
	profCountry     = 4 // string
	profOptIn       = 5 // tuple (bool, channel...), repeated
	profContractEnd = 6 // date
)

var profileFields = newFieldTable(bytesField(profBirthday), bytesField(profSignupDate), bytesField(profTimeZone),
	bytesField(profCountry), bytesField(profOptIn), bytesField(profContractEnd))

// appendProfile writes a non-empty profile as the nested field field.
// Opt-ins are written sorted by channel, so that equal records encode to
// equal bytes.
func appendProfile(b []byte, field int, pr *schemas.Profile) []byte {
	if pr.Birthday.IsZero() && pr.SignupDate.IsZero() && pr.TimeZone == "" &&
		pr.Country == "" && len(pr.OptIns) == 0 && pr.ContractEnd.IsZero() {
		return b
	}
	b, at := beginNested(b, field)
	b = appendDateField(b, profBirthday, pr.Birthday)
	b = appendDateField(b, profSignupDate, pr.SignupDate)
	if pr.TimeZone != "" {
		b = appendStringField(b, profTimeZone, pr.TimeZone)
	}
	if pr.Country != "" {
		b = appendStringField(b, profCountry, pr.Country)
	}
	var buf [8]schemas.Channel
	for _, ch := range sortedChannels(buf[:0], pr.OptIns) {
		var at2 int
		b, at2 = beginNested(b, profOptIn)
		if pr.OptIns[ch] {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = append(b, ch...)
		b = endNested(b, at2)
	}
	b = appendDateField(b, profContractEnd, pr.ContractEnd)
	return endNested(b, at)
}

// decodeProfile decodes into p, which resetCustomer has emptied; h holds the
// strings it had (see str).
func decodeProfile(r reader, p *schemas.Profile, h *hints) error {
	for r.next(profileFields) {
		switch r.field {
		case profBirthday:
			p.Birthday = r.date()
		case profSignupDate:
			p.SignupDate = r.date()
		case profTimeZone:
			p.TimeZone = str(r.bytes(), h.tz)
		case profCountry:
			p.Country = str(r.bytes(), h.country)
		case profOptIn:
			v := r.bytes()
			if r.err != nil {
				break
			}
			if len(v) == 0 || v[0] > 1 {
				r.fail(errTruncated)
				break
			}
			if p.OptIns == nil {
				p.OptIns = make(map[schemas.Channel]bool, 4)
			}
			p.OptIns[channel(v[1:])] = v[0] == 1
		case profContractEnd:
			p.ContractEnd = r.date()
		}
	}
	return r.err
}

// sortedChannels returns the keys of m in order, so that equal records encode
// to equal bytes. It appends to dst (a stack array in the caller: a customer
// has a handful of channels).
func sortedChannels(dst []schemas.Channel, m map[schemas.Channel]bool) []schemas.Channel {
	for ch := range m {
		dst = append(dst, ch)
	}
	slices.Sort(dst)
	return dst
}

// channel returns the known channels without allocating.
func channel(b []byte) schemas.Channel {
	switch schemas.Channel(b) {
	case schemas.ChannelEmail:
		return schemas.ChannelEmail
	case schemas.ChannelSMS:
		return schemas.ChannelSMS
	case schemas.ChannelPush:
		return schemas.ChannelPush
	case schemas.ChannelRisk:
		return schemas.ChannelRisk
	}
	return schemas.Channel(b)
}
