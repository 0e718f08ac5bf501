// Command tlogcheck holds a ledger's tlog-tiles publication against golang.org/x/mod/sumdb/tlog,
// Russ Cox's transparency log package that C2SP tlog-tiles derives from: none of the ledger's
// code is used here, only the Go library's tiles, paths, hashes and proofs
// (tests/test_tiles_compat.py builds and runs it).
//
//	tlogcheck check [-records 0,5,9] [-olds 1,256,300] DIR
//	    DIR is a publication directory (checkpoint, tile/...). Prints one JSON line per check,
//	    exits 1 with "tlogcheck: MISMATCH: ..." on stderr on any disagreement.
//	tlogcheck paths < "L N W" lines
//	    prints {"go": Tile{H: 8, L, N, W}.Path(), "path": the tlog-tiles path} per line
//	    (L = -1 is tlog's data tile, the tlog-tiles entry bundle).
//	tlogcheck parse < tlog-tiles paths
//	    prints {"path", "ok", "L", "N", "W"} per line: tlog.ParseTilePath of the path with the
//	    height element put back.
//
// Build without network, in GOPATH mode against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o tlogcheck tests/tiles_go/main.go
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8 // tlog-tiles' tile height: 256 hashes to a full tile

var fullWidth = 1 << height

func main() {
	if len(os.Args) < 2 {
		fail("usage: tlogcheck check|paths|parse ...")
	}
	switch os.Args[1] {
	case "check":
		check(os.Args[2:])
	case "paths":
		paths()
	case "parse":
		parse()
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", args...)
	os.Exit(2)
}

func mismatch(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: MISMATCH: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v map[string]interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

// -- paths ------------------------------------------------------------------------------------

// tilesPath is the tlog-tiles path of t: tlog's own Tile.Path() ("tile/8/L/NNN[.p/W]") without
// the height element, and the data tile ("tile/8/data/...") as the entry bundle
// ("tile/entries/...").
func tilesPath(t tlog.Tile) string {
	p := t.Path()
	prefix := fmt.Sprintf("tile/%d/", t.H)
	if !strings.HasPrefix(p, prefix) {
		fail("tlog's path %q does not start with %q", p, prefix)
	}
	rest := p[len(prefix):]
	if t.L == -1 {
		if !strings.HasPrefix(rest, "data/") {
			fail("tlog's data tile path %q has no data element", p)
		}
		return "tile/entries/" + rest[len("data/"):]
	}
	return "tile/" + rest
}

// goPath is the tlog path of a tlog-tiles path: the height element put back.
func goPath(p string) string {
	if strings.HasPrefix(p, "tile/entries/") {
		return fmt.Sprintf("tile/%d/data/%s", height, p[len("tile/entries/"):])
	}
	if strings.HasPrefix(p, "tile/") {
		return fmt.Sprintf("tile/%d/%s", height, p[len("tile/"):])
	}
	return p
}

func paths() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			fail("want \"L N W\", got %q", in.Text())
		}
		l, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		w, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			fail("want \"L N W\", got %q", in.Text())
		}
		t := tlog.Tile{H: height, L: l, N: n, W: w}
		emit(map[string]interface{}{"L": l, "N": n, "W": w, "go": t.Path(), "path": tilesPath(t)})
	}
}

func parse() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		p := in.Text()
		t, err := tlog.ParseTilePath(goPath(p))
		out := map[string]interface{}{"path": p, "ok": err == nil}
		if err == nil {
			out["L"], out["N"], out["W"], out["H"] = t.L, t.N, t.W, t.H
		}
		emit(out)
	}
}

// -- reading a publication directory -----------------------------------------------------------

// dirReader is a tlog.TileReader over a publication directory. A partial tile that is gone is
// read from its full tile, or a wider partial one, as tlog-tiles lets a client do.
type dirReader struct {
	dir       string
	reads     int
	fallbacks int
}

func (r *dirReader) Height() int { return height }

func (r *dirReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func (r *dirReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.L < 0 {
			return nil, fmt.Errorf("tlog asked for data tile %s as hashes", t.Path())
		}
		data, err := r.readTile(t, tlog.HashSize)
		if err != nil {
			return nil, err
		}
		out[i] = data[:t.W*tlog.HashSize]
	}
	return out, nil
}

// readTile reads t's file (unit: bytes per hash, 0 for an entry bundle, whose size it does not
// check); a missing partial tile falls back to the full one, then to a wider partial one.
func (r *dirReader) readTile(t tlog.Tile, unit int) ([]byte, error) {
	r.reads++
	exact := tilesPath(t)
	data, err := os.ReadFile(filepath.Join(r.dir, exact))
	if err == nil {
		if unit > 0 && len(data) != t.W*unit {
			return nil, fmt.Errorf("%s is %d bytes, want %d", exact, len(data), t.W*unit)
		}
		return data, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || t.W == fullWidth {
		return nil, fmt.Errorf("%s: %v", exact, err)
	}
	full := t
	full.W = fullWidth
	candidates := []tlog.Tile{full}
	for w := t.W + 1; w < fullWidth; w++ {
		wider := t
		wider.W = w
		candidates = append(candidates, wider)
	}
	for _, c := range candidates {
		data, err := os.ReadFile(filepath.Join(r.dir, tilesPath(c)))
		if err == nil {
			if unit > 0 && len(data) != c.W*unit {
				return nil, fmt.Errorf("%s is %d bytes, want %d", tilesPath(c), len(data), c.W*unit)
			}
			r.fallbacks++
			return data, nil
		}
	}
	return nil, fmt.Errorf("%s is not published, nor its full tile or a wider partial one", exact)
}

// publishedWidth is the width of tile n at level l in a tree of size size.
func publishedWidth(size int64, l int, n int64) int {
	count := size >> uint(height*l)
	if w := count - n<<height; w < int64(fullWidth) {
		return int(w)
	}
	return fullWidth
}

// rawHashReader reads stored hashes straight from the tiles of a tree of `size`, trusting them:
// the root it gives is computed, not checked, so it can be compared with the checkpoint's.
func rawHashReader(r *dirReader, size int64) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			t := tlog.TileForIndex(height, x)
			t.W = publishedWidth(size, t.L, t.N)
			data, err := r.readTile(t, tlog.HashSize)
			if err != nil {
				return nil, err
			}
			if out[i], err = tlog.HashFromTile(t, data, x); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

// -- the checkpoint ---------------------------------------------------------------------------

// readCheckpoint parses the body of the signed note by hand (its SM2 signature has a key type
// that golang.org/x/mod/sumdb/note does not know): origin, size, base64 root.
func readCheckpoint(dir string) (string, int64, tlog.Hash) {
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	text := string(raw)
	end := strings.Index(text, "\n\n")
	if end < 0 {
		mismatch("checkpoint: no blank line between the body and the signatures")
	}
	lines := strings.Split(text[:end], "\n")
	if len(lines) < 3 {
		mismatch("checkpoint: body has %d lines, want origin, size, root", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		mismatch("checkpoint: size line %q is not a decimal tree size", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		mismatch("checkpoint: root line %q is not a base64 %d-byte hash", lines[2], tlog.HashSize)
	}
	var h tlog.Hash
	copy(h[:], root)
	if !strings.HasPrefix(text[end+2:], "\u2014 ") {
		mismatch("checkpoint: the signature line does not start with an em dash and a space")
	}
	return lines[0], size, h
}

// -- check ------------------------------------------------------------------------------------

func check(args []string) {
	flags := flag.NewFlagSet("check", flag.ExitOnError)
	records := flags.String("records", "", "comma-separated entry indices to prove (default: a spread)")
	olds := flags.String("olds", "", "comma-separated older tree sizes to prove consistent (default: a spread)")
	vkey := flags.String("vkey", "", "an Ed25519 verifier key: the checkpoint must verify with it (sumdb/note)")
	flags.Parse(args)
	if flags.NArg() != 1 {
		fail("usage: tlogcheck check [-records i,j] [-olds s,t] DIR")
	}
	dir := flags.Arg(0)
	origin, size, root := readCheckpoint(dir)
	emit(map[string]interface{}{"check": "checkpoint", "origin": origin, "size": size, "root": root.String()})
	if *vkey != "" {
		checkSignature(dir, *vkey)
	}
	if size == 0 {
		mismatch("checkpoint of an empty tree: nothing to hold against tlog")
	}
	r := &dirReader{dir: dir}
	expected := expectedTiles(size)
	checkFiles(dir, size, expected)
	leaves := checkRebuild(r, size, expected)
	checkRoot(r, size, root)
	checkRecords(r, size, root, leaves, indices(*records, defaultRecords(size), 0, size-1))
	checkTrees(r, size, root, indices(*olds, defaultOlds(size), 1, size))
	emit(map[string]interface{}{"check": "done", "size": size, "tile_reads": r.reads, "fallbacks": r.fallbacks})
}

func indices(given string, fallback []int64, lo, hi int64) []int64 {
	var out []int64
	if given == "" {
		out = fallback
	} else {
		for _, s := range strings.Split(given, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				fail("bad index %q", s)
			}
			out = append(out, v)
		}
	}
	seen := map[int64]bool{}
	var kept []int64
	for _, v := range out {
		if v >= lo && v <= hi && !seen[v] {
			seen[v] = true
			kept = append(kept, v)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i] < kept[j] })
	return kept
}

func defaultRecords(size int64) []int64 {
	out := []int64{0, 1, 254, 255, 256, 257, 65535, 65536, size / 3, size / 2, size - 2, size - 1}
	for i := int64(1); i < 16; i++ {
		out = append(out, size*i/16+i)
	}
	return out
}

func defaultOlds(size int64) []int64 {
	out := []int64{1, 2, 3, 7, 255, 256, 257, 511, 512, 65535, 65536, 65537, size / 3, size / 2, size - 1, size}
	for i := int64(1); i < 8; i++ {
		out = append(out, size*i/8+i)
	}
	return out
}

// expectedTiles are the tiles a tree of `size` is published as: tlog.NewTiles(8, 0, size) lists
// every full tile and every partial width a log growing one entry at a time would publish; a
// rebuilt publication keeps each level's widest partial tile (tlog-tiles needs that one).
func expectedTiles(size int64) []tlog.Tile {
	widest := map[int]int{}
	all := tlog.NewTiles(height, 0, size)
	for _, t := range all {
		if t.W < fullWidth && t.W > widest[t.L] {
			widest[t.L] = t.W
		}
	}
	var out []tlog.Tile
	for _, t := range all {
		if t.W == fullWidth || t.W == widest[t.L] {
			if t.W != publishedWidth(size, t.L, t.N) {
				mismatch("tlog.NewTiles(8, 0, %d) has tile %s, which is not the level's published width", size, t.Path())
			}
			out = append(out, t)
		}
	}
	return out
}

func dataTile(t tlog.Tile) tlog.Tile {
	return tlog.Tile{H: t.H, L: -1, N: t.N, W: t.W}
}

// checkFiles: the directory holds the hash tiles and entry bundles tlog says, at the paths tlog's
// Tile.Path() gives, each parsing back with tlog.ParseTilePath: every full tile and each level's
// widest partial one (expected), and nothing else but narrower partial tiles of the same
// indices, which tlog.NewTiles(8, 0, size) also lists (left from the sizes of older checkpoints).
func checkFiles(dir string, size int64, expected []tlog.Tile) {
	want, allowed := map[string]bool{}, map[string]bool{}
	for _, t := range expected {
		want[tilesPath(t)] = true
		if t.L == 0 {
			want[tilesPath(dataTile(t))] = true
		}
	}
	for _, t := range tlog.NewTiles(height, 0, size) {
		allowed[tilesPath(t)] = true
		if t.L == 0 {
			allowed[tilesPath(dataTile(t))] = true
		}
	}
	found := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(dir, "tile"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		found[rel] = true
		if t, err := tlog.ParseTilePath(goPath(rel)); err != nil {
			mismatch("published file %s: tlog.ParseTilePath(%q): %v", rel, goPath(rel), err)
		} else if tilesPath(t) != rel {
			mismatch("published file %s parses to %s", rel, t.Path())
		}
		return nil
	})
	if err != nil {
		fail("walking %s: %v", dir, err)
	}
	for p := range want {
		if !found[p] {
			mismatch("tlog needs %s (%s), which is not published", p, goPath(p))
		}
	}
	stale := 0
	for p := range found {
		if !allowed[p] {
			mismatch("published file %s (%s) is not a tile of the checkpoint's tree", p, goPath(p))
		}
		if !want[p] {
			stale++
		}
	}
	emit(map[string]interface{}{"check": "files", "files": len(found), "tiles": len(expected), "older_partials": stale})
}

func decodeBundle(path string, data []byte, want int) [][]byte {
	var entries [][]byte
	for at := 0; at < len(data); {
		if at+2 > len(data) {
			mismatch("%s: truncated length at byte %d", path, at)
		}
		n := int(binary.BigEndian.Uint16(data[at:]))
		if at+2+n > len(data) {
			mismatch("%s: entry %d runs past the end", path, len(entries))
		}
		entries = append(entries, data[at+2:at+2+n])
		at += 2 + n
	}
	if len(entries) != want {
		mismatch("%s holds %d entries, want %d", path, len(entries), want)
	}
	return entries
}

// checkRebuild reads every entry bundle, hashes each entry with tlog.RecordHash and holds it to
// its level-0 tile hash, then builds the whole tree again from the entries alone with
// tlog.StoredHashes and requires every published hash tile to be byte for byte tlog.ReadTileData
// of it. It returns the record hashes.
func checkRebuild(r *dirReader, size int64, expected []tlog.Tile) []tlog.Hash {
	var leaves []tlog.Hash
	var stored []tlog.Hash
	mem := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(stored)) {
				return nil, fmt.Errorf("stored hash %d not computed yet", x)
			}
			out[i] = stored[x]
		}
		return out, nil
	})
	bundles := 0
	for _, t := range expected {
		if t.L != 0 {
			continue
		}
		path := tilesPath(dataTile(t))
		data, err := os.ReadFile(filepath.Join(r.dir, path))
		if err != nil {
			mismatch("entry bundle: %v", err)
		}
		hashes, err := r.readTile(t, tlog.HashSize)
		if err != nil {
			mismatch("%v", err)
		}
		for j, entry := range decodeBundle(path, data, t.W) {
			index := t.N<<height + int64(j)
			h := tlog.RecordHash(entry)
			var inTile tlog.Hash
			copy(inTile[:], hashes[j*tlog.HashSize:])
			if h != inTile {
				mismatch("entry %d: tlog.RecordHash of its bundle entry is %v, its level-0 tile (%s) has %v",
					index, h, tilesPath(t), inTile)
			}
			more, err := tlog.StoredHashesForRecordHash(index, h, mem)
			if err != nil {
				fail("tlog.StoredHashesForRecordHash(%d): %v", index, err)
			}
			if int64(len(stored)) != tlog.StoredHashIndex(0, index) {
				fail("bad math: %d stored hashes before record %d", len(stored), index)
			}
			stored = append(stored, more...)
			leaves = append(leaves, h)
		}
		bundles++
	}
	if int64(len(leaves)) != size {
		mismatch("the entry bundles hold %d entries, the checkpoint says %d", len(leaves), size)
	}
	for _, t := range expected {
		want, err := tlog.ReadTileData(t, mem)
		if err != nil {
			fail("tlog.ReadTileData(%s): %v", t.Path(), err)
		}
		got, err := r.readTile(t, tlog.HashSize)
		if err != nil {
			mismatch("%v", err)
		}
		if string(got) != string(want) {
			mismatch("%s differs from tlog.ReadTileData(%s) of the tree built from the entries", tilesPath(t), t.Path())
		}
	}
	emit(map[string]interface{}{"check": "rebuild", "entries": len(leaves), "bundles": bundles,
		"stored_hashes": len(stored), "tiles": len(expected)})
	return leaves
}

// checkRoot: tlog.TreeHash over the tiles read as they are equals the checkpoint's root, and
// tlog.TileHashReader, which authenticates every tile it reads against that root, agrees.
func checkRoot(r *dirReader, size int64, root tlog.Hash) {
	raw, err := tlog.TreeHash(size, rawHashReader(r, size))
	if err != nil {
		mismatch("tlog.TreeHash(%d) over the tiles: %v", size, err)
	}
	if raw != root {
		mismatch("tlog.TreeHash(%d) over the tiles is %v, the checkpoint's root is %v", size, raw, root)
	}
	authed, err := tlog.TreeHash(size, tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, r))
	if err != nil {
		mismatch("tlog.TreeHash(%d, tlog.TileHashReader): %v", size, err)
	}
	if authed != root {
		mismatch("tlog.TreeHash(%d, tlog.TileHashReader) is %v, the checkpoint's root is %v", size, authed, root)
	}
	emit(map[string]interface{}{"check": "root", "size": size, "root": root.String()})
}

func checkRecords(r *dirReader, size int64, root tlog.Hash, leaves []tlog.Hash, records []int64) {
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, r)
	proofs := map[string][]string{}
	for _, i := range records {
		proof, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			mismatch("tlog.ProveRecord(%d, %d): %v", size, i, err)
		}
		if err := tlog.CheckRecord(proof, size, root, i, leaves[i]); err != nil {
			mismatch("tlog.CheckRecord(entry %d, size %d): %v", i, size, err)
		}
		proofs[strconv.FormatInt(i, 10)] = hexes(proof)
	}
	emit(map[string]interface{}{"check": "records", "size": size, "proved": len(records), "proofs": proofs})
}

// checkTrees: for each older size, its root by tlog.TreeHash from the current tree's tiles
// (complete nodes of the old tree are in them), the same root from the old tree's own tiles
// through tlog.TileHashReader (its partial tiles may be gone: the reader falls back), and
// tlog.ProveTree / tlog.CheckTree from it to the checkpoint.
func checkTrees(r *dirReader, size int64, root tlog.Hash, olds []int64) {
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, r)
	proofs := map[string][]string{}
	roots := map[string]string{}
	for _, old := range olds {
		oldRoot, err := tlog.TreeHash(old, hr)
		if err != nil {
			mismatch("tlog.TreeHash(%d) from the tree of %d: %v", old, size, err)
		}
		again, err := tlog.TreeHash(old, tlog.TileHashReader(tlog.Tree{N: old, Hash: oldRoot}, r))
		if err != nil || again != oldRoot {
			mismatch("the tiles of the tree of %d (read as tlog.TileHashReader of that tree) give %v, %v; want %v",
				old, again, err, oldRoot)
		}
		proof, err := tlog.ProveTree(size, old, hr)
		if err != nil {
			mismatch("tlog.ProveTree(%d, %d): %v", size, old, err)
		}
		if err := tlog.CheckTree(proof, size, root, old, oldRoot); err != nil {
			mismatch("tlog.CheckTree(%d -> %d): %v", old, size, err)
		}
		proofs[strconv.FormatInt(old, 10)] = hexes(proof)
		roots[strconv.FormatInt(old, 10)] = fmt.Sprintf("%x", oldRoot[:])
	}
	emit(map[string]interface{}{"check": "consistency", "size": size, "proved": len(olds), "proofs": proofs,
		"roots": roots})
}

func hexes(hashes []tlog.Hash) []string {
	out := make([]string, len(hashes))
	for i, h := range hashes {
		out[i] = fmt.Sprintf("%x", h[:])
	}
	return out
}

// checkSignature opens the checkpoint as a signed note with golang.org/x/mod/sumdb/note and the
// Ed25519 verifier key given: the note must carry that key's valid signature (the SM2 and
// witness lines, of types the package does not know, are left unverified, as it allows).
func checkSignature(dir, vkey string) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("-vkey: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	opened, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		mismatch("checkpoint: sumdb/note does not verify it with %s: %v", verifier.Name(), err)
	}
	emit(map[string]interface{}{"check": "signature", "verified": len(opened.Sigs),
		"unverified": len(opened.UnverifiedSigs), "name": opened.Sigs[0].Name})
}
