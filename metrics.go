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
	outcomeQueued             = "queued"
	outcomeQueueFull          = "queue_full"
	outcomeQueueNoSpace       = "queue_no_space"
)

var allOutcomes = []string{
	outcomeVerified, outcomeMissingSignature, outcomeMalformedSignature, outcomeBadSignature,
	outcomeBadCredentials, outcomeTooLarge, outcomeMethodNotAllowed, outcomeOverBudget,
	outcomeReadError, outcomeTimeout, outcomeProviderError, outcomeMissingID, outcomeDuplicate,
	outcomeInFlight, outcomeStoreError, outcomeQueued, outcomeQueueFull, outcomeQueueNoSpace,
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
	forms    map[string]prometheus.Counter // by signed form (signed_form.go)

	keys        []prometheus.Counter          // key_matches_total, by key (report.go)
	notEnforced map[string]prometheus.Counter // by outcome (report.go)
}

func newHandlerMetrics(ctx caddy.Context, provider string) (*handlerMetrics, error) {
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		for _, c := range []prometheus.Collector{requestsTotal, bodyBytes, verifyDuration, bufferedBytes, signedFormTotal,
			keyMatchesTotal, notEnforcedTotal,
			queueMetrics.enqueue, queueMetrics.delivery, queueMetrics.attempts, queueMetrics.dead, queueStates} {
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
		forms:    formCounters(provider),

		notEnforced: notEnforcedCounters(provider),
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

// Store-and-forward metrics, labelled by queue name.
var queueMetrics = struct {
	enqueue  *prometheus.HistogramVec
	delivery *prometheus.HistogramVec
	attempts *prometheus.CounterVec
	dead     *prometheus.CounterVec
}{
	enqueue: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhook_verify", Name: "queue_enqueue_seconds",
		Help:    "Time to store a verified event durably (its group commit's fsync included).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
	}, []string{"queue"}),
	delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhook_verify", Name: "queue_delivery_seconds",
		Help:    "Time from receipt to delivery of queued events.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
	}, []string{"queue"}),
	attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhook_verify", Name: "queue_attempts_total",
		Help: "Delivery attempts by result: delivered, 3xx, 4xx, 5xx, timeout, error, no_response, interrupted (not counted as an attempt).",
	}, []string{"queue", "result"}),
	dead: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhook_verify", Name: "queue_dead_total",
		Help: "Events that became dead (not delivered; kept for replay).",
	}, []string{"queue"}),
}

// queueStates reports the live queues' events by state and the age of
// their oldest pending event, read from the queues at each scrape (one
// value per queue, however many configs share it during a reload).
var queueStates prometheus.Collector = queueStateCollector{}

var (
	queueEventsDesc = prometheus.NewDesc("caddy_webhook_verify_queue_events",
		"Events in the queue by state (pending includes in flight).", []string{"queue", "state"}, nil)
	queuePendingBytesDesc = prometheus.NewDesc("caddy_webhook_verify_queue_pending_bytes",
		"Bytes of the bodies waiting to be delivered.", []string{"queue"}, nil)
	queueOldestDesc = prometheus.NewDesc("caddy_webhook_verify_queue_oldest_pending_age_seconds",
		"Age of the oldest event waiting to be delivered (0 when none waits).", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc("caddy_webhook_verify_queue_paused",
		"1 while the queue's delivery is paused.", []string{"queue"}, nil)
)

type queueStateCollector struct{}

func (queueStateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueEventsDesc
	ch <- queuePendingBytesDesc
	ch <- queueOldestDesc
	ch <- queuePausedDesc
}

func (queueStateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rt := range liveQueues() {
		st := rt.stats()
		ch <- prometheus.MustNewConstMetric(queueEventsDesc, prometheus.GaugeValue, float64(st.Pending-st.InFlight), rt.name, "pending")
		ch <- prometheus.MustNewConstMetric(queueEventsDesc, prometheus.GaugeValue, float64(st.InFlight), rt.name, "in_flight")
		ch <- prometheus.MustNewConstMetric(queueEventsDesc, prometheus.GaugeValue, float64(st.Delivered), rt.name, "delivered")
		ch <- prometheus.MustNewConstMetric(queueEventsDesc, prometheus.GaugeValue, float64(st.Dead), rt.name, "dead")
		ch <- prometheus.MustNewConstMetric(queuePendingBytesDesc, prometheus.GaugeValue, float64(st.PendingBytes), rt.name)
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, st.OldestPendingAge, rt.name)
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, paused, rt.name)
	}
}
