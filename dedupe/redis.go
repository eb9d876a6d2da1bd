package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store in Redis, shared by every gateway that uses the same
// server: for a cluster of gateways behind a load balancer. A claim is one
// key per event, "inflight:<token>" with the in-flight expiry, set with
// SET NX (no read-then-write race); a delivered event is "done" with the
// dedupe ttl.
type Redis struct {
	client *redis.Client
}

// Timeouts of the Redis client: a store that does not answer fails the
// request with 503 quickly rather than holding it.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = time.Second
)

// NewRedis connects to the redis:// or rediss:// URL (user, password and
// db in the URL). The client reconnects by itself.
func NewRedis(url string) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// the parser's error may quote the URL, password included
		return nil, fmt.Errorf("invalid redis url: expected redis://[user:password@]host:port[/db] or rediss://...")
	}
	opts.DialTimeout = redisDialTimeout
	opts.ReadTimeout = redisIOTimeout
	opts.WriteTimeout = redisIOTimeout
	opts.PoolTimeout = redisDialTimeout
	opts.MaxRetries = 1
	opts.DialerRetries = 1 // go-redis tries 5 dials by default: 5 x 2 s per try
	return &Redis{client: redis.NewClient(opts)}, nil
}

// Close closes the client.
func (s *Redis) Close() error { return s.client.Close() }

// claimScript: claim KEYS[1] as ARGV[1] for ARGV[2] ms unless it exists;
// returns {0, 0} claimed, {1, pttl} done, {2, pttl} in flight. A key that
// already holds ARGV[1] is our own claim, replayed: the client retries a
// command whose reply it lost (a read timeout, a dropped connection) after
// Redis ran it, and that retry must report the claim it made, not find it
// in flight and leave it to nobody.
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return {0, 0}
end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
	return {0, 0}
end
local ttl = redis.call('PTTL', KEYS[1])
if v == 'done' then
	return {1, ttl}
end
return {2, ttl}
`)

// releaseScript deletes KEYS[1] if it still holds the claim ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Claim implements Store.
func (s *Redis) Claim(ctx context.Context, key string, inflightTTL time.Duration) (Claim, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return s.claim(ctx, key, "inflight:"+hex.EncodeToString(b[:]), inflightTTL)
}

// claim claims key as token. The token is unique to this claim, so that
// the client's retry of the script is idempotent.
func (s *Redis) claim(ctx context.Context, key, token string, inflightTTL time.Duration) (Claim, error) {
	res, err := claimScript.Run(ctx, s.client, []string{key}, token, inflightTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("%w: %v", ErrStore, err)
	}
	if len(res) != 2 {
		return Claim{}, fmt.Errorf("%w: unexpected claim reply %v", ErrStore, res)
	}
	left := time.Duration(res[1]) * time.Millisecond
	switch res[0] {
	case 0:
		return Claim{Status: Claimed, Token: token}, nil
	case 1:
		return Claim{Status: Duplicate, Left: left}, nil
	default:
		return Claim{Status: InFlight, Left: left}, nil
	}
}

// Done implements Store.
func (s *Redis) Done(ctx context.Context, key, _ string, ttl time.Duration) error {
	if err := s.client.Set(ctx, key, "done", ttl).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// Release implements Store.
func (s *Redis) Release(ctx context.Context, key, token string) error {
	if err := releaseScript.Run(ctx, s.client, []string{key}, token).Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

var _ Store = (*Redis)(nil)
