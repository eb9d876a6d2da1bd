package webhookverify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookverify/caddy-webhook-verify/queue"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the store-and-forward queues on Caddy's admin endpoint,
// under /webhook_verify/:
//
//	GET    /webhook_verify/queues
//	GET    /webhook_verify/queues/<name>/events?state=dead&after=<seq>&limit=<n>
//	GET    /webhook_verify/queues/<name>/events/<id>[?body=1]
//	POST   /webhook_verify/queues/<name>/events/<id>/replay
//	DELETE /webhook_verify/queues/<name>/events/<id>
//	POST   /webhook_verify/queues/<name>/pause
//	POST   /webhook_verify/queues/<name>/resume
//	GET    /webhook_verify/queues/<name>/backup   (a copy of the queue's bbolt file)
//
// Answers are JSON; errors are caddy.APIError. A body is returned only
// when asked for (?body=1), base64 in "body".
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_verify",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

const adminPrefix = "/webhook_verify/"

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// QueueStats is one queue in GET /webhook_verify/queues.
type QueueStats struct {
	Name             string  `json:"name"`
	Pending          int64   `json:"pending"` // in flight included
	InFlight         int64   `json:"in_flight"`
	Delivered        int64   `json:"delivered"`
	Dead             int64   `json:"dead"`
	PendingBytes     int64   `json:"pending_bytes"`
	OldestPendingAge float64 `json:"oldest_pending_age_seconds"`
	Paused           bool    `json:"paused"`
	// BackendUnavailable: the last attempts found the backend down;
	// one attempt at a time is made until one is delivered.
	BackendUnavailable bool   `json:"backend_unavailable"`
	Ordered            bool   `json:"ordered"`
	Path               string `json:"path"`
}

func (rt *queueRuntime) stats() QueueStats {
	c := rt.q.Counts()
	rt.mu.Lock()
	// an attempt is in flight until its outcome is committed (and
	// counted), and leaves just after: never more in flight than pending
	inflight := min(int64(len(rt.inflight)+len(rt.completing)), c.Pending)
	ordered := rt.target != nil && rt.target.cfg.Ordered
	down := rt.failStreak >= breakerAfter
	rt.mu.Unlock()
	st := QueueStats{Name: rt.name, Pending: c.Pending, InFlight: inflight, Delivered: c.Delivered, Dead: c.Dead,
		PendingBytes: c.PendingBytes, Paused: rt.q.Paused(), BackendUnavailable: down, Ordered: ordered, Path: rt.path}
	if oldest, err := rt.q.OldestPending(); err == nil && !oldest.IsZero() {
		st.OldestPendingAge = max(rt.now().Sub(oldest).Seconds(), 0)
	}
	return st
}

// EventView is an event as the admin API shows it.
type EventView struct {
	*queue.Event
	State State   `json:"state"`
	Body  *[]byte `json:"body,omitempty"`
}

// State is queue.State, as the admin API shows it.
type State = queue.State

func (rt *queueRuntime) view(ev *queue.Event, withBody bool, inflight map[string]bool) EventView {
	v := EventView{Event: ev, State: ev.State}
	// in flight here, or (store redis) leased by a gateway
	if ev.State == queue.Pending && (inflight[ev.ID] || ev.LeasedUntil.After(rt.now())) {
		v.State = queue.InFlight
	}
	if withBody {
		b := ev.Body
		if b == nil {
			b = []byte{}
		}
		v.Body = &b
	}
	return v
}

func apiError(status int, err error, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: err, Message: msg}
}

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	path := strings.TrimPrefix(r.URL.Path, adminPrefix)
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 || parts[0] != "queues" {
		return apiError(http.StatusNotFound, fmt.Errorf("not found"), "use /webhook_verify/queues")
	}
	if len(parts) == 1 {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed"), "GET only")
		}
		var out []QueueStats
		for _, rt := range liveQueues() {
			out = append(out, rt.stats())
		}
		slices.SortFunc(out, func(a, b QueueStats) int { return strings.Compare(a.Name, b.Name) })
		if out == nil {
			out = []QueueStats{}
		}
		return writeJSON(w, out)
	}
	rt := liveQueue(parts[1])
	if rt == nil {
		return apiError(http.StatusNotFound, fmt.Errorf("no queue %q", parts[1]), "no such queue in the running config")
	}
	switch {
	case len(parts) == 3 && (parts[2] == "pause" || parts[2] == "resume"):
		if r.Method != http.MethodPost {
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed"), "POST only")
		}
		if err := rt.q.SetPaused(parts[2] == "pause"); err != nil {
			return apiError(http.StatusServiceUnavailable, err, "the queue store failed")
		}
		rt.wakeUp()
		return writeJSON(w, rt.stats())
	case len(parts) == 3 && parts[2] == "backup":
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed"), "GET only")
		}
		if errors.Is(rt.backupCheck(), queue.ErrNoBackup) {
			return apiError(http.StatusNotImplemented, queue.ErrNoBackup, queue.ErrNoBackup.Error())
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := rt.q.Backup(w); err != nil {
			return apiError(http.StatusServiceUnavailable, err, "the backup failed")
		}
		return nil
	case len(parts) == 3 && parts[2] == "events":
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed"), "GET only")
		}
		return rt.listEvents(w, r)
	case len(parts) >= 4 && parts[2] == "events":
		return rt.serveEvent(w, r, parts[3], parts[4:])
	}
	return apiError(http.StatusNotFound, fmt.Errorf("not found"), "unknown queue route")
}

func (rt *queueRuntime) listEvents(w http.ResponseWriter, r *http.Request) error {
	qs := r.URL.Query()
	state := queue.State(qs.Get("state"))
	switch state {
	case "", queue.Pending, queue.InFlight, queue.Delivered, queue.Dead:
	default:
		return apiError(http.StatusBadRequest, fmt.Errorf("unknown state %q", state), "state is pending, in_flight, delivered or dead")
	}
	var after uint64
	limit := 100
	if v := qs.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return apiError(http.StatusBadRequest, err, "after is a sequence number")
		}
		after = n
	}
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return apiError(http.StatusBadRequest, fmt.Errorf("bad limit"), "limit is a positive number")
		}
		limit = min(n, 10000)
	}
	inflight := rt.inFlight()
	evs, err := rt.q.List(state, after, 0)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, err, "the queue store failed")
	}
	out := []EventView{}
	for _, ev := range evs {
		v := rt.view(ev, false, inflight)
		if state == queue.InFlight && v.State != queue.InFlight || state == queue.Pending && v.State != queue.Pending {
			continue
		}
		out = append(out, v)
		if len(out) >= limit {
			break
		}
	}
	return writeJSON(w, out)
}

func (rt *queueRuntime) serveEvent(w http.ResponseWriter, r *http.Request, id string, rest []string) error {
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		ev, err := rt.q.Get(id, r.URL.Query().Get("body") == "1")
		if errors.Is(err, queue.ErrUnknown) {
			return apiError(http.StatusNotFound, err, "no such event")
		}
		if err != nil {
			return apiError(http.StatusServiceUnavailable, err, "the queue store failed")
		}
		return writeJSON(w, rt.view(ev, r.URL.Query().Get("body") == "1", rt.inFlight()))
	case len(rest) == 0 && r.Method == http.MethodDelete:
		if rt.inFlight()[id] {
			return apiError(http.StatusConflict, fmt.Errorf("event in flight"), "the event is being delivered; try again in a moment")
		}
		err := rt.q.Discard(id)
		if errors.Is(err, queue.ErrUnknown) {
			return apiError(http.StatusNotFound, err, "no such event")
		}
		if errors.Is(err, queue.ErrState) {
			return apiError(http.StatusConflict, err, "the event is being delivered by a gateway; try again in a moment")
		}
		if err != nil {
			return apiError(http.StatusServiceUnavailable, err, "the queue store failed")
		}
		return writeJSON(w, map[string]any{"id": id, "discarded": true})
	case len(rest) == 1 && rest[0] == "replay" && r.Method == http.MethodPost:
		ev, err := rt.q.Replay(id, rt.now())
		switch {
		case errors.Is(err, queue.ErrUnknown):
			return apiError(http.StatusNotFound, err, "no such event")
		case errors.Is(err, queue.ErrState):
			return apiError(http.StatusConflict, err, err.Error())
		case err != nil:
			return apiError(http.StatusServiceUnavailable, err, "the queue store failed")
		}
		rt.wakeUp()
		return writeJSON(w, rt.view(ev, false, nil))
	}
	return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method not allowed"),
		"GET or DELETE .../events/<id>, POST .../events/<id>/replay")
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var _ caddy.AdminRouter = adminAPI{}

// backupCheck says whether the queue's store makes backups (ErrNoBackup
// for Redis), before any byte of the answer is written.
func (rt *queueRuntime) backupCheck() error {
	if _, ok := rt.q.(*queue.RedisQueue); ok {
		return queue.ErrNoBackup
	}
	return nil
}
