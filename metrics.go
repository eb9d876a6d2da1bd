package webhookverify

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"
)

// Outcomes of a request, the "outcome" label of
// caddy_webhook_verify_requests_total. Each request counts once.
const (
	outcomeVerified           = "verified"
	outcomeMissingSignature   = "missing_signature"
	outcomeMalformedSignature = "malformed_signature"
	outcomeBadSignature       = "bad_signature"
	outcomeBadCredentials     = "bad_credentials"
	outcomeTooLarge           = "too_large"
	outcomeMethodNotAllowed   = "method_not_allowed"
	outcomeOverBudget         = "over_budget"
	outcomeReadError          = "read_error"
	outcomeTimeout            = "timeout"
	outcomeProviderError      = "provider_error"
	outcomeMissingID          = "missing_id"
	outcomeDuplicate          = "duplicate"
	outcomeInFlight           = "in_flight"
	outcomeStoreError         = "store_error"
)

var allOutcomes = []string{
	outcomeVerified, outcomeMissingSignature, outcomeMalformedSignature, outcomeBadSignature,
	outcomeBadCredentials, outcomeTooLarge, outcomeMethodNotAllowed, outcomeOverBudget,
	outcomeReadError, outcomeTimeout, outcomeProviderError, outcomeMissingID, outcomeDuplicate,
	outcomeInFlight, outcomeStoreError,
}

// The collectors are created once per process and registered in each
// config's registry (as Caddy's reverse_proxy does with its own), so a
// reload neither panics nor double counts. Labels are bounded: provider
// and outcome, never an event id.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "requests_total",
		Help:      "Webhook requests by provider and outcome; each request counts once.",
	}, []string{"provider", "outcome"})

	bodyBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "body_bytes",
		Help:      "Size of verified webhook bodies.",
		Buckets:   prometheus.ExponentialBuckets(256, 4, 10), // 256 B .. 64 MiB
	}, []string{"provider"})

	verifyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "duration_seconds",
		Help:      "Time spent reading and verifying a webhook body.",
		Buckets:   prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs .. 6.5 s
	}, []string{"provider"})

	bufferedBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy",
		Subsystem: "webhook_verify",
		Name:      "buffered_bytes",
		Help:      "Bytes of webhook bodies reserved under max_inflight_bytes right now.",
	}, []string{"provider"})
)

// handlerMetrics are the provider's series, resolved once at provision.
type handlerMetrics struct {
	outcomes map[string]prometheus.Counter
	bytes    prometheus.Observer
	duration prometheus.Observer
	buffered prometheus.Gauge
}

func newHandlerMetrics(ctx caddy.Context, provider string) (*handlerMetrics, error) {
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range []prometheus.Collector{requestsTotal, bodyBytes, verifyDuration, bufferedBytes} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) || are.ExistingCollector != c {
					return nil, err
				}
			}
		}
	}
	m := &handlerMetrics{
		outcomes: make(map[string]prometheus.Counter, len(allOutcomes)),
		bytes:    bodyBytes.WithLabelValues(provider),
		duration: verifyDuration.WithLabelValues(provider),
		buffered: bufferedBytes.WithLabelValues(provider),
	}
	for _, o := range allOutcomes {
		m.outcomes[o] = requestsTotal.WithLabelValues(provider, o)
	}
	return m, nil
}

func (m *handlerMetrics) count(outcome string) {
	if c, ok := m.outcomes[outcome]; ok {
		c.Inc()
	}
}

func (m *handlerMetrics) observe(size int, start time.Time) {
	m.bytes.Observe(float64(size))
	m.duration.Observe(time.Since(start).Seconds())
}
