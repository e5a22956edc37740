package dpisim

import (
	"math"
	"math/rand/v2"
)

// weighted picks an index with given weights in O(1) (Vose's alias method):
// one 64-bit random number per pick, no floating point.
type weighted struct {
	n uint64
	e []aliasEntry
}

// aliasEntry is one column of the alias table, both halves in one cache line.
type aliasEntry struct {
	thresh uint32 // pick i when the low 32 bits are below thresh
	alias  uint32 // otherwise alias
}

func newWeighted(w []float64) weighted {
	n := len(w)
	if n == 0 {
		panic("BUG: weighted with no weights")
	}
	var sum float64
	for _, x := range w {
		sum += x
	}
	p := make([]float64, n)
	for i, x := range w {
		p[i] = x * float64(n) / sum
	}
	ws := weighted{n: uint64(n), e: make([]aliasEntry, n)}
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, x := range p {
		if x < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		ws.e[s] = aliasEntry{uint32(p[s] * (1 << 32)), uint32(l)}
		p[l] -= 1 - p[s]
		if p[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left has probability 1 (up to rounding): point the alias at
	// itself so both branches pick it.
	for _, i := range append(small, large...) {
		ws.e[i] = aliasEntry{math.MaxUint32, uint32(i)}
	}
	return ws
}

func (ws *weighted) pick(r *rand.PCG) int {
	u := r.Uint64()
	i := (u >> 32) * ws.n >> 32
	e := &ws.e[i]
	if uint32(u) < e.thresh {
		return int(i)
	}
	return int(e.alias)
}

// zipf returns weights 1/(k+1)^s for k in [0,n).
func zipf(n int, s float64) []float64 {
	w := make([]float64, n)
	for k := range w {
		w[k] = math.Pow(float64(k+1), -s)
	}
	return w
}

// powerLaw picks indexes in [0,n) with density proportional to (k+1)^-s,
// the continuous approximation of Zipf's law, by inverting its distribution
// function: one math.Pow (or Exp) per pick and no table, so that picking
// among 100000 subscribers costs no cache miss.
type powerLaw struct {
	n    float64
	a    float64 // (n+1)^(1-s) - 1, or ln(n+1) when s == 1
	inv  float64 // 1/(1-s)
	log  bool
	ones bool // s == 0: uniform
	// When 2*inv is a small integer k, x^inv is x^(k/2): multiplications
	// and at most one square root, 10 times cheaper than math.Pow.
	half int
}

func newPowerLaw(n int, s float64) powerLaw {
	p := powerLaw{n: float64(n)}
	switch {
	case s == 0:
		p.ones = true
	case s == 1:
		p.log = true
		p.a = math.Log(p.n + 1)
	default:
		p.a = math.Pow(p.n+1, 1-s) - 1
		p.inv = 1 / (1 - s)
		if k := math.Round(2 * p.inv); math.Abs(k-2*p.inv) < 1e-9 && k >= 1 && k <= 40 {
			p.half = int(k)
		}
	}
	return p
}

// powHalf returns v^(k/2).
func powHalf(v float64, k int) float64 {
	x := 1.0
	if k&1 == 1 {
		x = math.Sqrt(v)
	}
	for k >>= 1; k > 0; k >>= 1 {
		if k&1 == 1 {
			x *= v
		}
		v *= v
	}
	return x
}

func (p *powerLaw) pick(r *rand.PCG) int {
	u := float64(r.Uint64()>>11) * 0x1p-53
	var x float64
	switch {
	case p.ones:
		x = u * p.n
	case p.log:
		x = math.Exp(u*p.a) - 1
	case p.half > 0:
		x = powHalf(1+u*p.a, p.half) - 1
	default:
		x = math.Exp(p.inv*math.Log(1+u*p.a)) - 1
	}
	k := int(x)
	if k >= int(p.n) { // rounding at u close to 1
		k = int(p.n) - 1
	}
	return k
}

// pool is a set of strings picked with a Zipf or explicit distribution. Pools
// are small (at most some 20000 strings): their alias tables and popular
// strings stay in the CPU caches.
type pool struct {
	s []string
	w weighted
}

func newPool(s []string, w []float64) pool {
	return pool{s: s, w: newWeighted(w)}
}

func newZipfPool(s []string, exp float64) pool {
	return newPool(s, zipf(len(s), exp))
}

func (p *pool) pick(r *rand.PCG) string { return p.s[p.w.pick(r)] }

// intn returns a number in [0,n) for n < 2^32 (Lemire's multiply; the bias
// of skipping the rejection step is below 2^-32 n, irrelevant here).
func intn(r *rand.PCG, n int) int {
	return int((r.Uint64() >> 32) * uint64(n) >> 32)
}

// chance reports true with probability p/1000.
func chance(r *rand.PCG, perMille int) bool {
	return intn(r, 1000) < perMille
}
