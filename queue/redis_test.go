package queue

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// quietLogger drops go-redis's own log lines ("failed to dial ...") that
// the tests of a stopped Redis produce.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// redisKit: each model run has its own redis-server, with AOF and
// appendfsync always; a crash is a kill -9 of the server and a start from
// its AOF (the gateway's process holds nothing of the queue).
var redisKit = storeKit{name: "redis", res: time.Microsecond, setup: func(t *testing.T) modelStore {
	return &redisStore{srv: redistest.StartDurable(t)}
}}

type redisStore struct{ srv *redistest.Server }

func (r *redisStore) String() string { return "redis " + r.srv.Addr() }

func (r *redisStore) open() (Engine, error) { return OpenRedis(r.srv.URL(), RedisOptions{}) }

func (r *redisStore) crash(e Engine) error {
	r.srv.Restart()
	return e.Close()
}

// TestRedisStoreModel is the contract suite's model test on the Redis
// store.
func TestRedisStoreModel(t *testing.T) { runModel(t, redisKit) }
