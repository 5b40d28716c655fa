package workload

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// Config shapes the traffic.
type Config struct {
	Seed      uint64
	Customers int     // distinct customers
	Skew      float64 // Zipf s parameter (> 1); higher = more skewed
	// BuyProbability is the chance that a cart ends in a purchase rather
	// than being abandoned.
	BuyProbability float64
	Products       int
	Currency       string
	// AllKinds adds the traffic every rule kind of the example rules
	// needs: signups, coupons issued and redeemed, purchases with a
	// service date, refunds, card bursts from another country, outlier
	// amounts, profile confirmations, and profiles with a birthday,
	// registration date and contract end of today (in the customer's
	// zone). Off, the generator produces exactly the traffic it always
	// did for a seed (the system tests' reference model relies on it).
	AllKinds bool
	// CouponTTL is how long after issue a coupon expires (AllKinds).
	CouponTTL time.Duration
	// Attributes adds what a real clickstream and order feed carry beyond
	// what the rules read (page URL, referrer, user agent, campaign; the
	// order's channel and shipping method) as properties, so that an
	// event is about 300 bytes in Avro, as in production. The benchmarks
	// use it. It draws nothing from the random source: the sequence of
	// events for a seed is the same with it on or off.
	Attributes bool
}

// DefaultConfig is a mid-sized shop.
func DefaultConfig() Config {
	return Config{Seed: 1, Customers: 10000, Skew: 1.1, BuyProbability: 0.6, Products: 500, Currency: "EUR"}
}

type phase uint8

const (
	idle phase = iota
	browsing
	carting
)

type session struct {
	phase   phase
	product int
	carted  int
	n       int
	coupon  string // last coupon issued and not redeemed (AllKinds)
	order   string // last order (AllKinds)
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	cfg      Config
	rng      *rand.Rand
	zipf     *rand.Zipf
	sessions map[int]*session
	seq      uint64
	// perm maps Zipf ranks to customers so the busiest customers are not
	// the lowest IDs.
	perm []int
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	if cfg.Customers <= 0 {
		cfg.Customers = 1
	}
	if cfg.Skew <= 1 {
		cfg.Skew = 1.1
	}
	if cfg.Products <= 0 {
		cfg.Products = 100
	}
	if cfg.Currency == "" {
		cfg.Currency = "EUR"
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	return &Generator{
		cfg:      cfg,
		rng:      rng,
		zipf:     rand.NewZipf(rng, cfg.Skew, 1, uint64(cfg.Customers-1)),
		sessions: map[int]*session{},
		perm:     rng.Perm(cfg.Customers),
	}
}

// CustomerID is the ID of customer number i.
func CustomerID(i int) schemas.CustomerID { return schemas.CustomerID(fmt.Sprintf("c-%06d", i)) }

// ProductID is the ID of product number i.
func ProductID(i int) string { return "p-" + strconv.Itoa(i) }

// Price is the deterministic unit price of product i.
func (g *Generator) Price(i int) schemas.Money {
	return schemas.Money{Minor: int64(499 + (i*7919)%20000), Currency: g.cfg.Currency}
}

// Next fills ev (after Reset) with the next event at event time t.
func (g *Generator) Next(t time.Time, ev *schemas.Event) {
	g.next(t, ev)
	if g.cfg.Attributes && ev.Source != schemas.SourceProfile {
		g.attributes(ev)
	}
}

// Attribute values, picked by the event's sequence number.
var (
	userAgents = [...]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
	}
	referrers = [...]string{"https://www.google.com/", "https://www.instagram.com/", "", "https://newsletter.example.com/spring"}
	campaigns = [...]string{"spring_sale", "brand", "retargeting", "none"}
)

// attributes fills ev.Properties without touching the random source.
func (g *Generator) attributes(ev *schemas.Event) {
	n := g.seq
	if ev.Source == schemas.SourceTransaction {
		ev.Properties = map[string]string{
			"sales_channel": [...]string{"web", "app", "store"}[n%3],
			"shipping":      [...]string{"standard", "express", "pickup"}[n%3],
			"basket_id":     "b-" + strconv.FormatUint(n*2654435761%1000003, 36) + "-" + string(ev.Customer),
			"campaign":      campaigns[n%uint64(len(campaigns))],
		}
		return
	}
	path := "/"
	if ev.ProductID != "" {
		path = "/products/" + ev.ProductID + "/detail"
	}
	ev.Properties = map[string]string{
		"url":        "https://shop.example.com" + path + "?utm_source=" + campaigns[n%uint64(len(campaigns))],
		"referrer":   referrers[n%uint64(len(referrers))],
		"user_agent": userAgents[n%uint64(len(userAgents))],
		"campaign":   campaigns[(n/7)%uint64(len(campaigns))],
	}
}

// next is Next without the attributes.
func (g *Generator) next(t time.Time, ev *schemas.Event) {
	ev.Reset()
	c := g.perm[int(g.zipf.Uint64())]
	s := g.sessions[c]
	if s == nil {
		s = &session{}
		g.sessions[c] = s
	}
	g.seq++
	ev.ID = "e-" + strconv.FormatUint(g.cfg.Seed, 10) + "-" + strconv.FormatUint(g.seq, 10)
	ev.Customer = CustomerID(c)
	ev.Time = t.UTC()
	ev.Source = schemas.SourceClickstream
	ev.SessionID = "s-" + strconv.Itoa(c) + "-" + strconv.Itoa(s.n)
	ev.Device = [...]string{"web", "ios", "android"}[c%3]
	ev.Country = [...]string{"DE", "FR", "NL", "ES", "IT"}[c%5]

	if g.cfg.AllKinds && g.extra(c, s, t, ev) {
		return
	}

	if s.n == 0 && g.rng.Float64() < 0.05 {
		// An occasional profile update, so profiles flow too.
		s.n++
		ev.Source = schemas.SourceProfile
		ev.Type = schemas.ProfileUpdate
		ev.Profile.TimeZone = [...]string{"Europe/Berlin", "Europe/Paris", "Europe/Amsterdam", "Europe/Madrid", "Europe/Rome"}[c%5]
		ev.Profile.Country = ev.Country
		ev.Profile.Birthday = schemas.Date{Year: 1960 + c%40, Month: time.Month(1 + c%12), Day: 1 + c%28}
		ev.Profile.OptIns = map[schemas.Channel]bool{schemas.ChannelEmail: true, schemas.ChannelPush: c%2 == 0}
		ev.SessionID, ev.Device = "", ""
		if g.cfg.AllKinds {
			// Dates of today in the customer's zone, so that the
			// calendar rules have something to celebrate.
			loc, err := time.LoadLocation(ev.Profile.TimeZone)
			if err != nil {
				loc = time.UTC
			}
			l := t.In(loc)
			today := schemas.Date{Year: l.Year(), Month: l.Month(), Day: l.Day()}
			switch c % 3 {
			case 0:
				ev.Profile.Birthday = schemas.Date{Year: 1960 + c%40, Month: today.Month, Day: today.Day}
			case 1:
				ev.Profile.SignupDate = schemas.Date{Year: today.Year - 1 - c%5, Month: today.Month, Day: today.Day}
			case 2:
				ev.Profile.ContractEnd = today
			}
		}
		return
	}

	r := g.rng.Float64()
	switch s.phase {
	case idle:
		s.n++
		s.phase = browsing
		ev.Type = schemas.PageView
	case browsing:
		switch {
		case r < 0.55:
			s.product = g.rng.IntN(g.cfg.Products)
			ev.Type = schemas.ProductView
			ev.ProductID = ProductID(s.product)
			ev.Price = g.Price(s.product)
		case r < 0.80:
			g.addToCart(s, ev)
		default:
			s.phase = idle
			ev.Type = schemas.PageView
		}
	case carting:
		switch {
		case r < 0.25:
			g.addToCart(s, ev)
		case r < 0.32 && s.carted > 0:
			ev.Type = schemas.RemoveFromCart
			ev.ProductID = ProductID(s.product)
		case r < 0.32+0.68*g.cfg.BuyProbability:
			g.purchase(c, s, ev)
		default:
			// Abandoned: the session ends with the cart full.
			s.phase, s.carted = idle, 0
			ev.Type = schemas.PageView
		}
	}
}

// extra fills ev with one of the AllKinds events, or reports false.
func (g *Generator) extra(c int, s *session, t time.Time, ev *schemas.Event) bool {
	r := g.rng.Float64()
	switch {
	case r < 0.01:
		ev.Type = schemas.Signup
	case r < 0.02:
		ev.Source = schemas.SourceTransaction
		ev.Type = schemas.CouponIssued
		s.coupon = "cp-" + strconv.Itoa(c) + "-" + strconv.FormatUint(g.seq, 10)
		ev.CouponID = s.coupon
		ttl := g.cfg.CouponTTL
		if ttl <= 0 {
			ttl = 14 * 24 * time.Hour
		}
		ev.CouponExpiry = t.Add(ttl).UTC()
	case r < 0.025 && s.coupon != "":
		ev.Source = schemas.SourceTransaction
		ev.Type = schemas.CouponRedeemed
		ev.CouponID, s.coupon = s.coupon, ""
	case r < 0.03:
		ev.Source = schemas.SourceProfile
		ev.Type = "profile_confirmed"
	case r < 0.033 && s.order != "":
		ev.Source = schemas.SourceTransaction
		ev.Type = schemas.Refund
		ev.OrderID, s.order = s.order, ""
		ev.Amount = g.Price(s.product)
	default:
		return false
	}
	if ev.Source != schemas.SourceClickstream {
		ev.SessionID, ev.Device = "", ""
	}
	return true
}

func (g *Generator) addToCart(s *session, ev *schemas.Event) {
	if s.phase != carting || g.rng.Float64() < 0.5 {
		s.product = g.rng.IntN(g.cfg.Products)
	}
	s.phase = carting
	s.carted++
	ev.Type = schemas.AddToCart
	ev.ProductID = ProductID(s.product)
	ev.Quantity = int32(1 + g.rng.IntN(2))
	ev.Price = g.Price(s.product)
}

func (g *Generator) purchase(c int, s *session, ev *schemas.Event) {
	ev.Source = schemas.SourceTransaction
	ev.Type = schemas.Purchase
	ev.OrderID = "o-" + strconv.Itoa(c) + "-" + strconv.Itoa(s.n)
	p := g.Price(s.product)
	ev.Items = append(ev.Items[:0], schemas.Item{ProductID: ProductID(s.product), Quantity: 1, UnitPrice: p})
	ev.Amount = p
	ev.PaymentMethod = "card"
	ev.CardFingerprint = "fp-" + strconv.Itoa(c)
	ev.SessionID, ev.Device = "", ""
	s.phase, s.carted = idle, 0
	if g.cfg.AllKinds {
		s.order = ev.OrderID
		switch r := g.rng.Float64(); {
		case r < 0.10: // a trip: a service date three months ahead
			d := ev.Time.AddDate(0, 3, 0)
			ev.ServiceDate = schemas.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()}
		case r < 0.13: // an outlier amount
			ev.Amount.Minor *= 25
		case r < 0.18: // bought from abroad
			ev.Country = "US"
		}
	}
}
