package tpm_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/tpm"
)

// requireSwtpm skips when swtpm is not installed on a developer machine, but
// fails in CI (CI=true), where a silently skipped hardware-path test would
// hide a broken pipeline.
func requireSwtpm(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("swtpm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("swtpm not installed but CI=true: apt-get install -y swtpm swtpm-tools tpm2-tools")
		}
		t.Skip("swtpm not installed (apt-get install -y swtpm swtpm-tools tpm2-tools); skipping real-TPM tests")
	}
}

func repoTool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "tools", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// factory runs tools/tpm-factory.sh and returns its KEY=value facts. The
// swtpm it starts is stopped when the test ends.
func factory(t *testing.T, ca *testCA, serial string, args ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(caCert, ca.certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caKey, ca.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, repoTool(t, "tpm-factory.sh"),
		append([]string{"--state", state, "--ca-cert", caCert, "--ca-key", caKey, "--serial", serial}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	// Register the stop even on failure: the script may have started swtpm.
	t.Cleanup(func() {
		if out, err := exec.Command(repoTool(t, "tpm-stop.sh"), state).CombinedOutput(); err != nil {
			t.Errorf("tpm-stop.sh: %v: %s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("tpm-factory.sh %v: %v\n%s", args, err, stderr.String())
	}
	facts := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("tpm-factory.sh: malformed output line %q", line)
		}
		facts[k] = v
	}
	for _, k := range []string{"TPM", "SWTPM_PID", "PID_FILE", "KEY_HANDLE", "CERT_INDEX", "CERT_DER", "STATE_DIR"} {
		if facts[k] == "" {
			t.Fatalf("tpm-factory.sh did not report %s; output:\n%s", k, out)
		}
	}
	t.Logf("factory %v: %s in %v (script says %ss)", args, facts["TPM"], time.Since(start).Round(time.Millisecond), facts["SECONDS"])
	return facts
}

func TestSwtpm(t *testing.T) {
	requireSwtpm(t)
	ca := newTestCA(t)

	cases := []struct {
		name, serial string
		args         []string
		chainLen     int
	}{
		{"ECC-P256", "SWTPM-P256-0001", nil, 1},
		{"ECC-P384", "SWTPM-P384-0001", []string{"--key", "ecc384"}, 1},
		{"RSA-2048", "SWTPM-RSA-0001", []string{"--rsa", "--ca-in-nv"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			facts := factory(t, ca, c.serial, c.args...)
			tp, err := tpm.Open(facts["TPM"])
			if err != nil {
				t.Fatalf("Open(%q): %v", facts["TPM"], err)
			}
			defer tp.Close()
			id, err := tpm.LoadIDevID(tp, tpm.DefaultKeyHandle, tpm.DefaultCertIndex, nil)
			if err != nil {
				t.Fatalf("LoadIDevID: %v", err)
			}
			if id.SerialNumber() != c.serial {
				t.Fatalf("SerialNumber() = %q, want %q", id.SerialNumber(), c.serial)
			}
			der, err := os.ReadFile(facts["CERT_DER"])
			if err != nil {
				t.Fatal(err)
			}
			cert := id.Certificate()
			if len(cert.Certificate) != c.chainLen || !bytes.Equal(cert.Certificate[0], der) {
				t.Fatalf("chain from NV: %d certificates (want %d), leaf equal to factory's: %v",
					len(cert.Certificate), c.chainLen, bytes.Equal(cert.Certificate[0], der))
			}
			checkSignatures(t, id.Signer())
			for _, v := range tlsVersions {
				start := time.Now()
				if err := mutualTLS(t, cert, ca.pool, v.v, c.serial); err != nil {
					t.Fatalf("%s mutual TLS: %v", v.name, err)
				}
				t.Logf("%s mutual TLS with swtpm key: %v", v.name, time.Since(start).Round(time.Millisecond))
			}
			if c.name == "RSA-2048" {
				d, err := id.Decrypter()
				if err != nil {
					t.Fatal(err)
				}
				checkDecrypt(t, d)
				opensslPKCS1(t, id, ca)
			}
			killMidRun(t, id, facts)
		})
	}

	t.Run("unix-socket", func(t *testing.T) {
		facts := factory(t, ca, "SWTPM-UNIX-0001")
		// Hand the provisioned state to a unix-socket swtpm.
		if out, err := exec.Command(repoTool(t, "tpm-stop.sh"), facts["STATE_DIR"]).CombinedOutput(); err != nil {
			t.Fatalf("tpm-stop.sh: %v: %s", err, out)
		}
		sock := filepath.Join(facts["STATE_DIR"], "swtpm.sock")
		swtpm := exec.Command("swtpm", "socket", "--tpm2",
			"--tpmstate", "dir="+filepath.Join(facts["STATE_DIR"], "tpm"),
			"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+sock+".ctrl",
			"--flags", "not-need-init,startup-clear")
		var log lockedBuffer
		swtpm.Stdout, swtpm.Stderr = &log, &log
		if err := swtpm.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = swtpm.Process.Kill(); _ = swtpm.Wait() })
		waitFor(t, func() bool {
			_, err := os.Stat(sock)
			return err == nil
		})

		tp, err := tpm.Open("unix:" + sock)
		if err != nil {
			t.Fatalf("Open(unix:...): %v", err)
		}
		defer tp.Close()
		id, err := tpm.LoadIDevID(tp, tpm.DefaultKeyHandle, tpm.DefaultCertIndex, nil)
		if err != nil {
			t.Fatalf("LoadIDevID over unix socket: %v (swtpm: %s)", err, log.String())
		}
		if err := mutualTLS(t, id.Certificate(), ca.pool, tls.VersionTLS13, "SWTPM-UNIX-0001"); err != nil {
			t.Fatal(err)
		}
		killMidRun(t, id, map[string]string{"SWTPM_PID": strconv.Itoa(swtpm.Process.Pid)})
	})
}

// killMidRun kills the swtpm under a working IDevID and checks the next
// signature fails promptly instead of hanging or panicking.
func killMidRun(t *testing.T, id *tpm.IDevID, facts map[string]string) {
	t.Helper()
	pid, err := strconv.Atoi(facts["SWTPM_PID"])
	if err != nil {
		t.Fatalf("SWTPM_PID %q: %v", facts["SWTPM_PID"], err)
	}
	checkSignatures(t, id.Signer())
	// pid comes from the swtpm this test started, never from a name lookup.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing swtpm %d: %v", pid, err)
	}
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- signOnce(id.Signer())
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("sign after swtpm was killed: want an error")
		}
		t.Logf("sign after kill failed in %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("sign after swtpm was killed: no answer within 5 s")
	}
}

// signOnce signs a digest with the hash the key's curve or type calls for.
func signOnce(s crypto.Signer) error {
	h := crypto.SHA256
	if ec, ok := s.Public().(*ecdsa.PublicKey); ok && ec.Curve == elliptic.P384() {
		h = crypto.SHA384
	}
	d := h.New()
	d.Write([]byte("after the TPM went away"))
	_, err := s.Sign(rand.Reader, d.Sum(nil), h)
	return err
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// Field 3 (after "pid (comm) ") is the state.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// opensslPKCS1 proves PKCS#1 v1.5 client signing: openssl s_server only
// offers rsa_pkcs1_sha256 for client signatures in TLS 1.2, so the handshake
// completes only if the TPM produced a valid PKCS#1 v1.5 CertificateVerify.
func opensslPKCS1(t *testing.T, id *tpm.IDevID, ca *testCA) {
	t.Helper()
	dir := t.TempDir()
	srvCert, srvKey := ca.serverCert(t, true)
	files := map[string][]byte{"ca.pem": ca.certPEM, "srv.pem": srvCert, "srv.key": srvKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command("openssl", "s_server", "-accept", addr, "-tls1_2",
		"-sigalgs", "RSA+SHA256", "-client_sigalgs", "RSA+SHA256", "-Verify", "1",
		"-CAfile", filepath.Join(dir, "ca.pem"), "-cert", filepath.Join(dir, "srv.pem"), "-key", filepath.Join(dir, "srv.key"))
	stdin, err := cmd.StdinPipe() // held open: EOF on stdin would stop s_server
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
			if strings.Contains(sc.Text(), "ACCEPT") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl s_server did not start: %s", out.String())
	}

	rec := &recordingSigner{Signer: id.Signer()}
	cert := id.Certificate()
	cert.PrivateKey = rec
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs:      ca.pool,
		Certificates: []tls.Certificate{cert},
		MaxVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("TLS 1.2 handshake with openssl s_server (RSA+SHA256 only): %v\ns_server: %s", err, out.String())
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "hello from the TPM\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "hello from the TPM") })
	if pss, plain := rec.counts(); pss != 0 || plain == 0 {
		t.Fatalf("client signatures: pss=%d pkcs1=%d, want PKCS#1 v1.5 only", pss, plain)
	}
	t.Logf("openssl s_server accepted the TPM's PKCS#1 v1.5 CertificateVerify")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
