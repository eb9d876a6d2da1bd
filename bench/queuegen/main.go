// Command queuegen makes signed events with distinct ids for
// bench/queue-load.sh (the queue deduplicates by id, so a load test of
// queue-mode ingest needs a fresh id on every request).
//
//	queuegen ids  -provider vivreal|vev -size N -n COUNT -secret S -out FILE
//	queuegen post -provider vivreal|vev -size N -n COUNT -secret S -c CONNS -url URL
//
// Every body is prefix + id + suffix, the id being "evt_" and 24 random
// hex digits, so every body of a size has the same length. ids writes
// FILE.prefix and FILE.suffix, and FILE with one "<id>\t<hex HMAC>" line
// per event (fixed length), for wrk's Lua script to assemble. post sends
// COUNT such events to URL over CONNS connections and fails unless every
// one is answered 200 {"received":true,"queued":true}.
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: queuegen ids|post [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	provider := fs.String("provider", "vivreal", "vivreal (HMAC-SHA256) or vev (HMAC-SHA512)")
	size := fs.Int("size", 1024, "body size in bytes")
	n := fs.Int("n", 1000, "events")
	secret := fs.String("secret", "", "signing secret")
	out := fs.String("out", "", "ids: output file")
	conns := fs.Int("c", 32, "post: connections")
	url := fs.String("url", "", "post: target URL")
	_ = fs.Parse(os.Args[2:])
	prefix, suffix := template(*provider, *size)
	newMAC := sha256.New
	if *provider == "vev" {
		newMAC = sha512.New
	}
	sign := func(id string) string {
		m := hmac.New(newMAC, []byte(*secret))
		m.Write(prefix)
		m.Write([]byte(id))
		m.Write(suffix)
		return hex.EncodeToString(m.Sum(nil))
	}
	switch os.Args[1] {
	case "ids":
		if err := writeIDs(*out, *n, prefix, suffix, sign); err != nil {
			log.Fatal(err)
		}
	case "post":
		if err := post(*url, *provider, *n, *conns, prefix, suffix, sign); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

// template returns a body's parts around its 28-byte id: a Vivreal
// collection event or a Vev PUBLISH, filled with HTML full of escaped
// quotes and non-ASCII, padded with spaces to exactly size bytes.
func template(provider string, size int) (prefix, suffix []byte) {
	prefix = []byte(`{"id":"`)
	head := `","event":"collection.object.created","timestamp":"2026-11-30T10:00:00Z","data":{"text":"`
	if provider == "vev" {
		head = `","hosting":"h1","event":"PUBLISH","payload":{"html":"`
	}
	unit := `<div class=\"c\">Café &amp; 日本</div>`
	room := size - len(prefix) - len(newID()) - len(head) - len(`"}}`)
	if room < 0 {
		log.Fatalf("size %d too small", size)
	}
	s := head + strings.Repeat(unit, room/len(unit)) + `"}}`
	return prefix, []byte(s + strings.Repeat(" ", size-len(prefix)-len(newID())-len(s)))
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

func writeIDs(out string, n int, prefix, suffix []byte, sign func(string) string) error {
	if err := os.WriteFile(out+".prefix", prefix, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(out+".suffix", suffix, 0o644); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for range n {
		id := newID()
		fmt.Fprintf(w, "%s\t%s\n", id, sign(id))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func post(url, provider string, n, conns int, prefix, suffix []byte, sign func(string) string) error {
	header, algo := "X-Vivreal-Signature", "sha256="
	if provider == "vev" {
		header, algo = "X-Vev-Signature", "sha512="
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: time.Minute}
	var next, queued atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var failure error
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				id := newID()
				body := append(append(append([]byte(nil), prefix...), id...), suffix...)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(header, algo+sign(id))
				resp, err := client.Do(req)
				if err != nil {
					once.Do(func() { failure = err })
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(`"queued":true`)) {
					once.Do(func() { failure = fmt.Errorf("event %s: %d %s", id, resp.StatusCode, got) })
					return
				}
				queued.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("posted %d events, %d queued, in %.2f s\n", n, queued.Load(), time.Since(start).Seconds())
	return failure
}
