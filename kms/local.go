package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Sentinel errors; callers decide what to answer with errors.Is.
var (
	// ErrKeyNotFound: no key has that ID, ARN or alias.
	ErrKeyNotFound = errors.New("KMS key not found")
	// ErrKeyDisabled: the key exists but is disabled; nothing it wraps
	// can be unwrapped until it is enabled again.
	ErrKeyDisabled = errors.New("KMS key is disabled")
	// ErrInvalidKeyID: a key ID that is neither a key ARN, a key UUID nor
	// an alias/NAME.
	ErrInvalidKeyID = errors.New("invalid KMS key id")
	// ErrAliasExists: CreateKey with an alias another key has.
	ErrAliasExists = errors.New("KMS alias already exists")
	// ErrInvalidCiphertext: a wrapped data key that was altered or is not
	// one this key manager made.
	ErrInvalidCiphertext = errors.New("invalid wrapped data key")
)

// DefaultAlias names the key used when an encrypted volume names none, as
// EC2's default EBS key; the keyring creates it on first use.
const DefaultAlias = "alias/aws/ebs"

// DataKeySize is the size of a data key: AES-256.
const DataKeySize = 32

// Key states, as KMS reports them.
const (
	StateEnabled  = "Enabled"
	StateDisabled = "Disabled"
)

// KeyInfo describes a KMS key.
type KeyInfo struct {
	KeyID       string    // UUID
	ARN         string    // arn:aws:kms:<region>:<account>:key/<uuid>
	Aliases     []string  // alias/NAME, sorted
	Description string    //
	State       string    // StateEnabled or StateDisabled
	CreatedAt   time.Time //
}

// keyFile is a key as stored in the keyring: one JSON file per key.
type keyFile struct {
	KeyInfo
	Material []byte `json:"material"` // the AES-256 key-encryption key
}

// Local is a keyring in a local directory that only the daemon reads.
type Local struct {
	dir     string
	region  string
	account string

	mu       sync.Mutex
	keys     map[string]*keyFile // by UUID
	onChange []func()            // called after a key's state changed
}

// OnChange registers fn to be called after any key is enabled or disabled:
// the engine then drops the data keys it unwrapped, so that a disabled key
// stops opening anything at once.
func (k *Local) OnChange(fn func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.onChange = append(k.onChange, fn)
}

var (
	aliasPattern = regexp.MustCompile(`^alias/[A-Za-z0-9/_-]{1,250}$`)
	uuidPattern  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	arnPattern   = regexp.MustCompile(`^arn:aws:kms:([a-z0-9-]+):([0-9]{12}):key/([0-9a-f-]{36})$`)
)

// OpenLocal opens (creating) the keyring in dir, for keys of the given
// region and 12-digit account. The directory is made 0700. It refuses,
// with an *UnsafePathError (ErrUnsafeKeyring) naming the path, its owner
// and mode, and what to do, a keyring or key file that others may read or
// that is owned by neither root nor the daemon's euid, and a keyring
// reached through a directory or symlink that someone else could replace
// (see resolveTrusted). Symlinks are resolved once: the keyring is used by
// its resolved path (Dir).
func OpenLocal(dir, region, account string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if dir, err = privateDir(abs); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", abs, err)
	}
	k := &Local{dir: dir, region: region, account: account, keys: make(map[string]*keyFile)}
	if err := k.load(); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", abs, err)
	}
	return k, nil
}

// privateDir resolves the keyring directory dir (absolute), checking the
// way to it, makes it 0700 if it does not exist, and checks that it is
// private. The directories that exist are checked before anything is made.
func privateDir(dir string) (string, error) {
	resolved, err := resolveTrusted(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(resolved, 0o700); err != nil {
			return "", err
		}
		resolved, err = resolveTrusted(resolved)
	}
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", &UnsafePathError{Path: resolved, Owner: uid(fi), Mode: fi.Mode(),
			Problem: "is open to others", Advice: "it holds keys, make it private (chmod 700 " + resolved + ")"}
	}
	return resolved, nil
}

// load reads every key file of the keyring.
func (k *Local) load() error {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			continue // temporary files of an interrupted write
		}
		kf, err := readKeyFile(filepath.Join(k.dir, name))
		if err != nil {
			return err
		}
		if name != kf.KeyID+".json" {
			return fmt.Errorf("%s holds key %s", name, kf.KeyID)
		}
		k.keys[kf.KeyID] = kf
	}
	// Aliases are unique across keys.
	seen := make(map[string]string)
	for id, kf := range k.keys {
		for _, a := range kf.Aliases {
			if other, dup := seen[a]; dup {
				return fmt.Errorf("alias %s is on keys %s and %s", a, other, id)
			}
			seen[a] = id
		}
	}
	return nil
}

// readKeyFile reads the key file at path in the keyring, a regular file
// owned by root or the daemon's euid that others may not read.
func readKeyFile(path string) (*keyFile, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &UnsafePathError{Path: path, Owner: uid(fi), Mode: fi.Mode(),
			Problem: "is " + fileKind(fi.Mode()) + ", not a regular file",
			Advice:  "a key file is a plain file the keyring wrote; move it away"}
	}
	if err := checkOwner(path, fi, "key file"); err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &UnsafePathError{Path: path, Owner: uid(fi), Mode: fi.Mode(),
			Problem: "is a key file open to others", Advice: "make it private (chmod 600 " + path + ")"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if !uuidPattern.MatchString(kf.KeyID) || len(kf.Material) != DataKeySize ||
		(kf.State != StateEnabled && kf.State != StateDisabled) {
		return nil, fmt.Errorf("key file %s: not a valid key", path)
	}
	return &kf, nil
}

// Dir is the keyring's directory (absolute).
func (k *Local) Dir() string { return k.dir }

// arn is the ARN of the key with this UUID in this keyring.
func (k *Local) arn(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", k.region, k.account, id)
}

// CreateKey makes a new enabled key, with an optional alias (not under
// alias/aws/, which is the keyring's own).
func (k *Local) CreateKey(description, alias string) (KeyInfo, error) {
	if strings.HasPrefix(alias, "alias/aws/") {
		return KeyInfo{}, fmt.Errorf("%w: alias %q: alias/aws/ is reserved", ErrInvalidKeyID, alias)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.createLocked(description, alias)
}

func (k *Local) createLocked(description, alias string) (KeyInfo, error) {
	if alias != "" {
		if !aliasPattern.MatchString(alias) {
			return KeyInfo{}, fmt.Errorf("%w: alias %q (want alias/NAME)", ErrInvalidKeyID, alias)
		}
		if _, err := k.lookupLocked(alias); err == nil {
			return KeyInfo{}, fmt.Errorf("%w: %s", ErrAliasExists, alias)
		}
	}
	if len(description) > 8192 {
		return KeyInfo{}, fmt.Errorf("%w: description longer than 8192 characters", ErrInvalidKeyID)
	}
	material := make([]byte, DataKeySize)
	if _, err := rand.Read(material); err != nil {
		return KeyInfo{}, fmt.Errorf("create key: %w", err)
	}
	id := uuid.NewString()
	kf := &keyFile{
		KeyInfo: KeyInfo{
			KeyID:       id,
			ARN:         k.arn(id),
			Description: description,
			State:       StateEnabled,
			CreatedAt:   time.Now().UTC().Truncate(time.Millisecond),
		},
		Material: material,
	}
	if alias != "" {
		kf.Aliases = []string{alias}
	}
	if err := k.writeLocked(kf); err != nil {
		return KeyInfo{}, err
	}
	k.keys[id] = kf
	return kf.info(), nil
}

func (kf *keyFile) info() KeyInfo {
	i := kf.KeyInfo
	i.Aliases = append([]string(nil), kf.Aliases...)
	return i
}

// writeLocked stores kf durably: a temporary file, fsync, rename, fsync of
// the directory.
func (k *Local) writeLocked(kf *keyFile) error {
	b, err := json.Marshal(kf)
	if err != nil {
		return err
	}
	path := filepath.Join(k.dir, kf.KeyID+".json")
	f, err := os.CreateTemp(k.dir, kf.KeyID+".*.tmp")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	tmp := f.Name()
	if err = f.Chmod(0o600); err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keyring: write key %s: %w", kf.KeyID, err)
	}
	d, err := os.Open(k.dir)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync %s: %w", k.dir, err)
	}
	return nil
}

// lookupLocked finds a key by UUID, ARN or alias.
func (k *Local) lookupLocked(id string) (*keyFile, error) {
	switch {
	case strings.HasPrefix(id, "alias/"):
		for _, kf := range k.keys {
			for _, a := range kf.Aliases {
				if a == id {
					return kf, nil
				}
			}
		}
	case strings.HasPrefix(id, "arn:"):
		m := arnPattern.FindStringSubmatch(id)
		if m == nil {
			return nil, fmt.Errorf("%w: %q", ErrInvalidKeyID, id)
		}
		if m[1] != k.region || m[2] != k.account {
			return nil, fmt.Errorf("%w: %s is not a key of region %s, account %s", ErrKeyNotFound, id, k.region, k.account)
		}
		if kf := k.keys[m[3]]; kf != nil {
			return kf, nil
		}
	case uuidPattern.MatchString(id):
		if kf := k.keys[id]; kf != nil {
			return kf, nil
		}
	default:
		return nil, fmt.Errorf("%w: %q (want a key ARN, a key ID or alias/NAME)", ErrInvalidKeyID, id)
	}
	return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, id)
}

// CreateAlias points a new alias/NAME at the key id names.
func (k *Local) CreateAlias(alias, id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !aliasPattern.MatchString(alias) || strings.HasPrefix(alias, "alias/aws/") {
		return fmt.Errorf("%w: alias %q (want alias/NAME, not under alias/aws/)", ErrInvalidKeyID, alias)
	}
	if _, err := k.lookupLocked(alias); err == nil {
		return fmt.Errorf("%w: %s", ErrAliasExists, alias)
	}
	kf, err := k.lookupLocked(id)
	if err != nil {
		return err
	}
	next := *kf
	next.Aliases = append(append([]string(nil), kf.Aliases...), alias)
	sort.Strings(next.Aliases)
	if err := k.writeLocked(&next); err != nil {
		return err
	}
	k.keys[kf.KeyID] = &next
	return nil
}

// DescribeKey describes the key a UUID, ARN or alias names.
func (k *Local) DescribeKey(id string) (KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kf, err := k.lookupLocked(id)
	if err != nil {
		return KeyInfo{}, err
	}
	return kf.info(), nil
}

// ListKeys describes every key, by creation time.
func (k *Local) ListKeys() []KeyInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]KeyInfo, 0, len(k.keys))
	for _, kf := range k.keys {
		out = append(out, kf.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].KeyID < out[j].KeyID
	})
	return out
}

// SetEnabled enables or disables a key. A disabled key wraps and unwraps
// nothing: the volumes and snapshots under it become unreadable, with
// ErrKeyDisabled, until it is enabled again.
func (k *Local) SetEnabled(id string, enabled bool) (KeyInfo, error) {
	k.mu.Lock()
	kf, err := k.lookupLocked(id)
	if err != nil {
		k.mu.Unlock()
		return KeyInfo{}, err
	}
	next := *kf
	next.State = StateDisabled
	if enabled {
		next.State = StateEnabled
	}
	if err := k.writeLocked(&next); err != nil {
		k.mu.Unlock()
		return KeyInfo{}, err
	}
	k.keys[kf.KeyID] = &next
	fns := k.onChange
	k.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	return next.info(), nil
}

// ResolveKey returns the ARN of the key id names, creating the default key
// when id is "" or DefaultAlias and it does not exist yet.
func (k *Local) ResolveKey(id string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id == "" {
		id = DefaultAlias
	}
	kf, err := k.lookupLocked(id)
	if errors.Is(err, ErrKeyNotFound) && id == DefaultAlias {
		info, err := k.createLocked("Default key that protects my EBS volumes when no other key is defined", DefaultAlias)
		if err != nil {
			return "", err
		}
		return info.ARN, nil
	}
	if err != nil {
		return "", err
	}
	if kf.State != StateEnabled {
		return "", fmt.Errorf("%w: %s", ErrKeyDisabled, kf.ARN)
	}
	return kf.ARN, nil
}

// Wrapped data keys: version byte, the KMS key's UUID (36 bytes), the GCM
// nonce, the sealed data key. The key's ARN is the additional data.
const (
	wrapVersion = 1
	wrapHeader  = 1 + 36
)

// GenerateDataKey makes a fresh data key and returns it in the clear and
// wrapped under the (enabled) key keyARN names.
func (k *Local) GenerateDataKey(keyARN string) (plaintext, wrapped []byte, err error) {
	plaintext = make([]byte, DataKeySize)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, nil, fmt.Errorf("generate data key: %w", err)
	}
	wrapped, err = k.Wrap(keyARN, plaintext)
	if err != nil {
		return nil, nil, err
	}
	return plaintext, wrapped, nil
}

// Wrap seals a data key under the key keyARN names.
func (k *Local) Wrap(keyARN string, dataKey []byte) ([]byte, error) {
	k.mu.Lock()
	kf, err := k.lookupLocked(keyARN)
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if kf.State != StateEnabled {
		return nil, fmt.Errorf("%w: %s", ErrKeyDisabled, kf.ARN)
	}
	aead, err := newGCM(kf.Material)
	if err != nil {
		return nil, err
	}
	out := make([]byte, wrapHeader, wrapHeader+aead.NonceSize()+len(dataKey)+aead.Overhead())
	out[0] = wrapVersion
	copy(out[1:], kf.KeyID)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, dataKey, []byte(kf.ARN)), nil
}

// Unwrap opens a wrapped data key and returns it with the ARN of the key
// that wrapped it.
func (k *Local) Unwrap(wrapped []byte) (dataKey []byte, keyARN string, err error) {
	if len(wrapped) < wrapHeader || wrapped[0] != wrapVersion {
		return nil, "", ErrInvalidCiphertext
	}
	id := string(wrapped[1:wrapHeader])
	k.mu.Lock()
	kf := k.keys[id]
	k.mu.Unlock()
	if kf == nil {
		if !uuidPattern.MatchString(id) {
			return nil, "", ErrInvalidCiphertext
		}
		return nil, "", fmt.Errorf("%w: %s", ErrKeyNotFound, k.arn(id))
	}
	if kf.State != StateEnabled {
		return nil, "", fmt.Errorf("%w: %s", ErrKeyDisabled, kf.ARN)
	}
	aead, err := newGCM(kf.Material)
	if err != nil {
		return nil, "", err
	}
	rest := wrapped[wrapHeader:]
	if len(rest) < aead.NonceSize() {
		return nil, "", ErrInvalidCiphertext
	}
	dataKey, err = aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], []byte(kf.ARN))
	if err != nil || len(dataKey) != DataKeySize {
		return nil, "", fmt.Errorf("%w (key %s)", ErrInvalidCiphertext, kf.ARN)
	}
	return dataKey, kf.ARN, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
