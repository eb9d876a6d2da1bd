package dedupe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/webhookverify/caddy-webhook-verify/internal/redistest"
)

// quietLogger drops go-redis's own log lines ("failed to dial ...") that
// the tests of a stopped Redis produce by the dozen; the tests log what
// matters themselves.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// storeErrBound is how long a store operation may take to fail when Redis
// is gone: the client's timeouts are bounded, the request gets its 503.
const storeErrBound = 5 * time.Second

func newRedisStore(t testing.TB, url string) *Redis {
	t.Helper()
	r, err := NewRedis(url)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawClient is a plain go-redis client, to look at what the store wrote.
func rawClient(t testing.TB, opts *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	runContract(t, func(t *testing.T) Store {
		return newRedisStore(t, srv.URL())
	})
}

// The store's keys in Redis: an in-flight claim is "inflight:<token>" with
// the in-flight expiry, a delivered event "done" with the dedupe ttl, a
// release deletes the key.
func TestRedisKeysAndTTLs(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedisStore(t, srv.URL())
	raw := rawClient(t, &redis.Options{Addr: srv.Addr()})
	ctx := context.Background()
	const key = "webhook_verify:vivreal:evt_0123456789abcdef01234567"

	c := mustClaim(t, s, key, 30*time.Second)
	wantStatus(t, c, Claimed)
	v, err := raw.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "inflight:") || v != c.Token {
		t.Errorf("in-flight value = %q, want the claim's token %q (inflight:...)", v, c.Token)
	}
	pttl, err := raw.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > 30*time.Second {
		t.Errorf("in-flight PTTL = %v, want in (0, 30s]", pttl)
	}
	// sub-second in-flight expiry keeps its precision
	wantStatus(t, mustClaim(t, s, key+"-ms", 1500*time.Millisecond), Claimed)
	if pttl := raw.PTTL(ctx, key+"-ms").Val(); pttl <= time.Second || pttl > 1500*time.Millisecond {
		t.Errorf("in-flight PTTL = %v, want in (1s, 1.5s]", pttl)
	}

	const ttl = 72 * time.Hour
	mustDone(t, s, key, c.Token, ttl)
	if v := raw.Get(ctx, key).Val(); v != "done" {
		t.Errorf("done value = %q, want \"done\"", v)
	}
	if pttl := raw.PTTL(ctx, key).Val(); pttl <= ttl-10*time.Second || pttl > ttl {
		t.Errorf("done PTTL = %v, want close to %v", pttl, ttl)
	}
	d := mustClaim(t, s, key, 30*time.Second)
	wantStatus(t, d, Duplicate)
	if d.Left <= ttl-10*time.Second || d.Left > ttl {
		t.Errorf("duplicate left = %v, want close to %v", d.Left, ttl)
	}
	// a claim on a done key does not touch it
	if v, pttl := raw.Get(ctx, key).Val(), raw.PTTL(ctx, key).Val(); v != "done" || pttl <= ttl-10*time.Second {
		t.Errorf("after a duplicate claim: value %q PTTL %v", v, pttl)
	}

	k2 := key + "-released"
	c2 := mustClaim(t, s, k2, 30*time.Second)
	wantStatus(t, c2, Claimed)
	mustRelease(t, s, k2, "inflight:not-the-token")
	if n := raw.Exists(ctx, k2).Val(); n != 1 {
		t.Fatal("a release with another token deleted the claim")
	}
	mustRelease(t, s, k2, c2.Token)
	if n := raw.Exists(ctx, k2).Val(); n != 0 {
		t.Errorf("the released claim's key still exists")
	}
	// the store writes one key per event and nothing else
	keys := raw.Keys(ctx, "*").Val()
	if len(keys) != 2 {
		t.Errorf("keys in redis: %v, want the event's and the -ms one", keys)
	}
}

// The client's claim is one SET NX: a key someone else set (another
// gateway's claim) is never overwritten, whatever its value.
func TestRedisClaimNeverOverwrites(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedisStore(t, srv.URL())
	raw := rawClient(t, &redis.Options{Addr: srv.Addr()})
	ctx := context.Background()
	raw.Set(ctx, "k", "inflight:other-gateway", 20*time.Second)
	c := mustClaim(t, s, "k", time.Minute)
	wantStatus(t, c, InFlight)
	if c.Left <= 0 || c.Left > 20*time.Second {
		t.Errorf("left = %v, want the other gateway's expiry (<= 20s)", c.Left)
	}
	if v := raw.Get(ctx, "k").Val(); v != "inflight:other-gateway" {
		t.Errorf("value after a refused claim = %q", v)
	}
}

// checkFailsFast runs op and checks it fails with ErrStore within
// storeErrBound.
func checkFailsFast(t *testing.T, what string, op func(context.Context) error) {
	t.Helper()
	start := time.Now()
	err := op(context.Background())
	el := time.Since(start)
	errorsIsStore(t, what, err)
	if el > storeErrBound {
		t.Errorf("%s: failed after %v, want within %v", what, el, storeErrBound)
	}
	t.Logf("%s: failed after %v: %v", what, el.Round(time.Millisecond), err)
}

// checkAllFailFast runs Claim, Done and Release on s at once, with a
// context without deadline (the handler claims with the request's), and
// checks that each fails with ErrStore within storeErrBound. It does not
// wait for an operation past the bound.
func checkAllFailFast(t *testing.T, s *Redis, where string) {
	t.Helper()
	type result struct {
		what string
		err  error
		took time.Duration
	}
	ops := map[string]func(context.Context) error{
		"Claim": func(ctx context.Context) error {
			_, err := s.Claim(ctx, "k", time.Minute)
			return err
		},
		"Done":    func(ctx context.Context) error { return s.Done(ctx, "k", "inflight:x", time.Hour) },
		"Release": func(ctx context.Context) error { return s.Release(ctx, "k", "inflight:x") },
	}
	results := make(chan result, len(ops)) // buffered: a late op never blocks
	start := time.Now()
	for what, op := range ops {
		go func() {
			t0 := time.Now()
			err := op(context.Background())
			results <- result{what, err, time.Since(t0)}
		}()
	}
	timeout := time.After(storeErrBound)
	for range ops {
		select {
		case r := <-results:
			if !errors.Is(r.err, ErrStore) {
				t.Errorf("%s %s: %v, want ErrStore", r.what, where, r.err)
			}
			t.Logf("%s %s failed after %v: %v", r.what, where, r.took.Round(time.Millisecond), r.err)
		case <-timeout:
			t.Fatalf("an operation %s still runs after %v", where, time.Since(start).Round(time.Millisecond))
		}
	}
}

func TestRedisDownThenBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedisStore(t, srv.URL())
	k := "webhook_verify:test:down"
	// the pool holds live connections when Redis goes away
	c := mustClaim(t, s, k, time.Minute)
	wantStatus(t, c, Claimed)

	srv.Stop()
	checkFailsFast(t, "Claim with redis stopped", func(ctx context.Context) error {
		_, err := s.Claim(ctx, k+"2", time.Minute)
		return err
	})
	checkFailsFast(t, "Done with redis stopped", func(ctx context.Context) error {
		return s.Done(ctx, k, c.Token, time.Hour)
	})
	checkFailsFast(t, "Release with redis stopped", func(ctx context.Context) error {
		return s.Release(ctx, k, c.Token)
	})
	// many requests while down, concurrently: every one fails fast (and
	// the client's dial errors pile up past its pool size)
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := s.Claim(context.Background(), fmt.Sprintf("%s-%d", k, i), time.Minute)
			if !errors.Is(err, ErrStore) {
				t.Errorf("claim %d with redis stopped: %v, want ErrStore", i, err)
			}
			if el := time.Since(start); el > storeErrBound {
				t.Errorf("claim %d with redis stopped failed after %v", i, el)
			}
		}()
	}
	wg.Wait()

	// Redis comes back (empty): the same client works again by itself
	srv.Restart()
	start := time.Now()
	var (
		c2  Claim
		err error
	)
	for {
		c2, err = s.Claim(context.Background(), k, time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStore) {
			t.Fatalf("claim after restart: %v, want ErrStore while reconnecting", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the client did not reconnect within 5s of Redis coming back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("reconnected %v after the restart", time.Since(start).Round(time.Millisecond))
	wantStatus(t, c2, Claimed) // the restarted server is empty
	mustDone(t, s, k, c2.Token, time.Hour)
	wantStatus(t, mustClaim(t, s, k, time.Minute), Duplicate)
	c3 := mustClaim(t, s, k+"-3", time.Minute)
	wantStatus(t, c3, Claimed)
	mustRelease(t, s, k+"-3", c3.Token)
	wantStatus(t, mustClaim(t, s, k+"-3", time.Minute), Claimed)
}

// A server that accepts connections and never answers (hung, or a proxy
// in front of a dead one): the client's own timeouts end the operation.
func TestRedisUnresponsiveServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c) // read everything, answer nothing
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	s := newRedisStore(t, "redis://"+l.Addr().String()+"/0")
	checkAllFailFast(t, s, "on a server that never answers")
}

func TestNewRedisBadURL(t *testing.T) {
	const pw = "s3cretpw"
	for _, url := range []string{
		"redis://user:" + pw + "@/bad:port",
		"redis://user:" + pw + "@host:notaport/0",   // net/url's error quotes the URL
		"redis://us%zzer:" + pw + "@host:6379/0",    // so does this one
		"http://user:" + pw + "@host:6379/0",        // wrong scheme
		"redis://user:" + pw + "@host:6379/x",       // bad db
		"redis://user:" + pw + "@host:6379/0?foo=1", // unknown option
		"",
	} {
		r, err := NewRedis(url)
		if err == nil {
			r.Close()
			t.Errorf("NewRedis(%q): no error", url)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("NewRedis(%q): the error shows the password: %v", url, err)
		}
	}
}

func TestRedisURLWithUserPasswordDB(t *testing.T) {
	const (
		adminPW = "adm1n-pw"
		userPW  = "gw-s3cret"
	)
	srv := redistest.StartWithArgs(t, "--requirepass", adminPW,
		"--user", "gateway", "on", ">"+userPW, "~*", "+@all")
	ctx := context.Background()
	base := "127.0.0.1:" + fmt.Sprint(srv.Port)

	// default user with its password, db 3
	s := newRedisStore(t, "redis://default:"+adminPW+"@"+base+"/3")
	c := mustClaim(t, s, "k", time.Minute)
	wantStatus(t, c, Claimed)
	mustDone(t, s, "k", c.Token, time.Hour)
	wantStatus(t, mustClaim(t, s, "k", time.Minute), Duplicate)
	db3 := rawClient(t, &redis.Options{Addr: base, Password: adminPW, DB: 3})
	if v := db3.Get(ctx, "k").Val(); v != "done" {
		t.Errorf("db 3 holds %q for the key, want \"done\"", v)
	}
	db0 := rawClient(t, &redis.Options{Addr: base, Password: adminPW, DB: 0})
	if n := db0.Exists(ctx, "k").Val(); n != 0 {
		t.Error("the key went to db 0, not the URL's db 3")
	}

	// a named ACL user, db 5
	su := newRedisStore(t, "redis://gateway:"+userPW+"@"+base+"/5")
	cu := mustClaim(t, su, "k", time.Minute)
	wantStatus(t, cu, Claimed)
	db5 := rawClient(t, &redis.Options{Addr: base, Password: adminPW, DB: 5})
	if v := db5.Get(ctx, "k").Val(); v != cu.Token {
		t.Errorf("db 5 holds %q for the key, want the claim's token", v)
	}

	// wrong password, wrong user, no password: every operation is ErrStore,
	// and the error does not show the password tried
	for _, url := range []string{
		"redis://default:wr0ng-pw@" + base + "/0",
		"redis://nobody:" + userPW + "@" + base + "/0",
		"redis://" + base + "/0",
	} {
		bad := newRedisStore(t, url)
		checkFailsFast(t, "Claim with bad credentials", func(ctx context.Context) error {
			_, err := bad.Claim(ctx, "k2", time.Minute)
			if err != nil && (strings.Contains(err.Error(), "wr0ng-pw") || strings.Contains(err.Error(), userPW)) {
				t.Errorf("the error shows the password: %v", err)
			}
			return err
		})
		checkFailsFast(t, "Done with bad credentials", func(ctx context.Context) error {
			return bad.Done(ctx, "k2", "", time.Hour)
		})
		checkFailsFast(t, "Release with bad credentials", func(ctx context.Context) error {
			return bad.Release(ctx, "k2", "inflight:x")
		})
	}
	if n := db0.Exists(ctx, "k2").Val(); n != 0 {
		t.Error("a client with bad credentials wrote a key")
	}
}

// The claim script is idempotent for its own token: run twice with the
// same token (the client's retry of a command whose reply was lost after
// Redis ran it), it reports Claimed both times, and the key holds that
// claim; another token still finds it in flight.
func TestRedisClaimReplayIsClaimed(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedisStore(t, srv.URL())
	raw := rawClient(t, &redis.Options{Addr: srv.Addr()})
	ctx := context.Background()
	const key, token = "webhook_verify:vivreal:evt_replay", "inflight:replayed-token"
	for i := 1; i <= 2; i++ {
		c, err := s.claim(ctx, key, token, time.Minute)
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		if c.Status != Claimed || c.Token != token {
			t.Fatalf("claim %d with the same token = %v (token %q), want claimed with %q", i, c.Status, c.Token, token)
		}
	}
	if v := raw.Get(ctx, key).Val(); v != token {
		t.Fatalf("value = %q, want the claim's token %q", v, token)
	}
	wantStatus(t, mustClaim(t, s, key, time.Minute), InFlight)
	c, err := s.claim(ctx, key, "inflight:another-token", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, InFlight)
	// once done, the same token is a duplicate like any other
	mustDone(t, s, key, token, time.Hour)
	c, err = s.claim(ctx, key, token, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, Duplicate)
}

// replyDropper is a TCP proxy in front of a Redis server that forwards
// every byte both ways, except the reply to the first EVALSHA it sees
// while armed: it drops that reply and closes the client's connection, as
// a connection reset after Redis ran the command would.
type replyDropper struct {
	ln       net.Listener
	target   string
	armed    atomic.Bool
	evalshas atomic.Int32 // EVALSHA commands forwarded
	dropped  atomic.Int32 // replies dropped

	mu    sync.Mutex
	conns []net.Conn
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *replyDropper) track(cs ...net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, cs...)
	p.mu.Unlock()
}

// evalshaCmd is how go-redis names EVALSHA in the RESP stream.
var evalshaCmd = []byte("$7\r\nevalsha\r\n")

func (p *replyDropper) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, server)
	var drop atomic.Bool
	go func() { // server to client
		defer client.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				if drop.Load() {
					// the reply to the script that Redis ran: lost
					p.dropped.Add(1)
					server.Close()
					return
				}
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer server.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			// go-redis writes a command in one piece: one read holds it
			if bytes.Contains(bytes.ToLower(buf[:n]), evalshaCmd) {
				p.evalshas.Add(1)
				if p.armed.CompareAndSwap(true, false) {
					drop.Store(true) // before Redis can answer
				}
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// The claim's reply is lost after Redis ran it, and go-redis retries the
// script on a new connection (MaxRetries 1): the retry finds the key
// holding this claim's own token, and the claim is Claimed, not a claim in
// flight that belongs to nobody (the sender would get 409 and every retry
// of the event would be refused until inflight_ttl).
func TestRedisClaimRetriedAfterLostReply(t *testing.T) {
	srv := redistest.Start(t)
	raw := rawClient(t, &redis.Options{Addr: srv.Addr()})
	ctx := context.Background()
	// loaded, so that EVALSHA runs the script (and is not answered
	// NOSCRIPT, then sent again as EVAL)
	if err := claimScript.Load(ctx, raw).Err(); err != nil {
		t.Fatal(err)
	}
	proxy := newReplyDropper(t, srv.Addr())
	s := newRedisStore(t, "redis://"+proxy.ln.Addr().String()+"/0")
	// a claim through the proxy first, so that the pool holds a connection
	wantStatus(t, mustClaim(t, s, "warm-up", time.Minute), Claimed)

	const key = "webhook_verify:vivreal:evt_lost_reply"
	proxy.armed.Store(true)
	before := proxy.evalshas.Load()
	c, err := s.Claim(ctx, key, time.Minute)
	if n := proxy.dropped.Load(); n != 1 {
		t.Fatalf("the proxy dropped %d replies, want 1: the test did not lose the claim's reply", n)
	}
	if n := proxy.evalshas.Load() - before; n != 2 {
		t.Fatalf("the claim sent EVALSHA %d times, want 2 (the command and go-redis's retry)", n)
	}
	if err != nil {
		t.Fatalf("claim whose first reply was lost: %v", err)
	}
	if c.Status != Claimed {
		t.Fatalf("claim whose first reply was lost = %v (left %v), want claimed", c.Status, c.Left)
	}
	if v := raw.Get(ctx, key).Val(); v != c.Token {
		t.Fatalf("value = %q, want the claim's token %q", v, c.Token)
	}
	// and the claim works as any other: released, it is claimable again
	mustRelease(t, s, key, c.Token)
	wantStatus(t, mustClaim(t, s, key, time.Minute), Claimed)
}
