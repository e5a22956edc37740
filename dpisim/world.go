package dpisim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// world holds the immutable pools a generator draws from: subscribers, hosts
// and strings. It is built once per (seed, sizes) and shared by generators.
type world struct {
	// Subscribers and hosts are computed from their index (entities.go):
	// no table, so picking among 100000 costs no cache miss.
	subs  subscribers
	hosts hostSpace

	paths, referers, cookies, userAgents, contentTypes, locations pool
	cipherSuites                                                  []tlsClient
	tlsClients                                                    weighted
	gatewayMACs                                                   []uint64
	cgnat                                                         []uint32

	cnames, mx, ns, txt                pool // DNS rdata in wire format
	resolversV4                        []uint32
	resolversV6Hi, resolversV6Lo       []uint64
	sipURI, sipFrom, sipTo, sipCallID  pool
	sipUAgent, sipGateways             pool
	ftpServer, ftpUser, ftpPassword    pool
	imLogin, imPassw, imScreen, imUIN  pool
	imReceivers                        pool
	mailAddr, mailSubject, mailServers pool
	rawData                            pool
	mplsLabels                         []string
}

type tlsClient struct {
	hello  uint16 // bytes of cipher suites in the Client Hello
	suites string // first 16 suites, 2 bytes each, as on the wire
}

type worldKey struct {
	seed        uint64
	subscribers int
	hosts       int
}

var worlds sync.Map // worldKey -> *world (built once, read-only after)

var worldMu sync.Mutex

func getWorld(seed uint64, subscribers, hosts int) *world {
	k := worldKey{seed, subscribers, hosts}
	if w, ok := worlds.Load(k); ok {
		return w.(*world)
	}
	worldMu.Lock()
	defer worldMu.Unlock()
	if w, ok := worlds.Load(k); ok {
		return w.(*world)
	}
	w := newWorld(seed, subscribers, hosts)
	worlds.Store(k, w)
	return w
}

func newWorld(seed uint64, subscribers, hosts int) *world {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := &world{}
	w.buildSubscribers(r, subscribers)
	w.buildHosts(r, hosts)
	w.buildHTTP(r)
	w.buildDNS(r)
	w.buildMeta(r)
	return w
}

var (
	firstNames = []string{"ivan", "alexey", "sergey", "dmitry", "andrey", "maria", "elena", "olga", "natalia", "anna",
		"pavel", "nikolay", "irina", "tatiana", "mikhail", "yulia", "artem", "ekaterina", "oleg", "svetlana",
		"john", "kate", "alex", "max", "victor", "denis", "roman", "igor", "vera", "nina"}
	lastNames = []string{"ivanov", "petrov", "sidorov", "smirnov", "kuznetsov", "popov", "vasiliev", "sokolov",
		"mikhailov", "novikov", "fedorov", "morozov", "volkov", "alekseev", "lebedev", "semenov", "egorov",
		"pavlov", "kozlov", "stepanov", "nikolaev", "orlov", "andreev", "makarov", "zakharov", "smith", "brown"}
	words = []string{"shop", "news", "market", "city", "game", "play", "cloud", "media", "photo", "video", "music",
		"book", "auto", "travel", "sport", "food", "home", "tech", "bank", "pay", "mobile", "web", "info", "portal",
		"store", "club", "forum", "tv", "radio", "kino", "moda", "stroy", "dom", "zdorovie", "school", "job",
		"delivery", "taxi", "pizza", "sushi", "flowers", "kids", "pet", "garden", "fitness", "beauty", "bet", "lotto",
		"crypto", "smart", "digital", "express", "prime", "best", "top", "mega", "super", "fast", "online", "start"}
	tlds       = []string{"ru", "ru", "ru", "com", "com", "net", "org", "io", "su", "xn--p1ai", "info", "de", "pro", "biz", "me", "tv"}
	subdomains = []string{"www", "www", "m", "api", "static", "img", "cdn", "media", "mail", "s", "st", "i", "ads", "track", "app", "login"}
)

// popularHosts are the head of the host distribution, most popular first.
var popularHosts = []string{
	"www.google.com", "www.youtube.com", "i.ytimg.com", "yandex.ru", "vk.com", "sun9-1.userapi.com",
	"rr3---sn-4g5e6nsz.googlevideo.com", "mc.yandex.ru", "www.gstatic.com", "fonts.googleapis.com",
	"ok.ru", "mail.ru", "www.instagram.com", "scontent.cdninstagram.com", "web.telegram.org",
	"api.telegram.org", "www.facebook.com", "static.xx.fbcdn.net", "graph.facebook.com", "twitter.com",
	"pbs.twimg.com", "www.tiktok.com", "v16-webapp.tiktok.com", "www.wildberries.ru", "www.ozon.ru",
	"ir.ozone.ru", "avatars.mds.yandex.net", "yastatic.net", "an.yandex.ru", "sba.yandex.net",
	"www.avito.ru", "00.img.avito.st", "dzen.ru", "www.kinopoisk.ru", "rutube.ru", "www.microsoft.com",
	"login.microsoftonline.com", "settings-win.data.microsoft.com", "update.microsoft.com", "www.apple.com",
	"gateway.icloud.com", "mesu.apple.com", "play.googleapis.com", "android.clients.google.com",
	"connectivitycheck.gstatic.com", "www.wikipedia.org", "ru.wikipedia.org", "upload.wikimedia.org",
	"github.com", "avatars.githubusercontent.com", "www.sberbank.ru", "online.sberbank.ru", "www.tinkoff.ru",
	"www.gosuslugi.ru", "esia.gosuslugi.ru", "www.rbc.ru", "ria.ru", "lenta.ru", "www.kommersant.ru",
	"www.championat.com", "www.sports.ru", "www.drom.ru", "auto.ru", "www.hh.ru", "2gis.ru", "www.banki.ru",
	"www.netflix.com", "occ-0-1234-1235.1.nflxso.net", "www.twitch.tv", "video-edge-c2a1b2.twitch.tv",
	"discord.com", "cdn.discordapp.com", "www.whatsapp.com", "mmg.whatsapp.net", "www.amazon.com",
	"m.media-amazon.com", "aws.amazon.com", "s3.amazonaws.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com",
	"www.cloudflare.com", "ajax.googleapis.com", "www.googletagmanager.com", "www.google-analytics.com",
	"googleads.g.doubleclick.net", "pagead2.googlesyndication.com", "top-fwz1.mail.ru", "r.mradx.net",
	"ad.mail.ru", "counter.yadro.ru", "www.pinterest.com", "i.pinimg.com", "www.reddit.com", "i.redd.it",
	"steamcommunity.com", "store.steampowered.com", "cdn.cloudflare.steamstatic.com", "www.spotify.com",
	"open.spotify.com", "music.yandex.ru", "zvuk.com", "vk.me", "vkvideo.ru", "sun1-88.userapi.com",
	"www.linkedin.com", "zoom.us", "us05web.zoom.us", "www.skype.com", "teams.microsoft.com",
	"outlook.office365.com", "e.mail.ru", "imap.yandex.ru", "smtp.mail.ru", "www.booking.com",
	"www.aliexpress.com", "ae01.alicdn.com", "www.ebay.com", "www.bing.com", "duckduckgo.com",
	"www.dns-shop.ru", "www.mvideo.ru", "www.eldorado.ru", "www.citilink.ru", "lamoda.ru", "market.yandex.ru",
	"eda.yandex.ru", "taxi.yandex.ru", "www.kp.ru", "www.gazeta.ru", "habr.com", "pikabu.ru", "www.ivi.ru",
	"okko.tv", "start.ru", "more.tv", "www.litres.ru", "www.labirint.ru", "www.ya.ru", "xn--80ajghhoc2aj1c8b.xn--p1ai",
}

func (w *world) buildSubscribers(r *rand.Rand, n int) {
	w.subs = newSubscribers(r, n)
}

func (w *world) buildHosts(r *rand.Rand, n int) {
	w.hosts = newHostSpace(r, n)
	w.gatewayMACs = []uint64{0x00000c9ff001, 0x001b21a0b1c2, 0x3c8ab0112233, 0x7483ef445566}
	w.cgnat = make([]uint32, 256)
	for i := range w.cgnat {
		w.cgnat[i] = 100<<24 | 64<<16 | uint32(r.IntN(1<<14)) // 100.64.0.0/18: carrier-grade NAT
		if i < 128 {
			w.cgnat[i] = 198<<24 | 51<<16 | 100<<8 | uint32(i) // 198.51.100.0/24 public pool
		}
	}
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
	"Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36 OPR/95.0.0.0",
	"okhttp/4.12.0",
	"Dalvik/2.1.0 (Linux; U; Android 13; Redmi Note 12 Build/TKQ1.221114.001)",
	"com.vkontakte.android/8.104 (Android 13; SDK 33; arm64-v8a; Xiaomi 2201117TY; ru; 2400x1080)",
	"YandexMusic/2024.11.1 (iPhone; iOS 18.1; Scale/3.00)",
	"Microsoft-CryptoAPI/10.0",
	"Microsoft-Delivery-Optimization/10.0",
	"Windows-Update-Agent/10.0.10011.16384 Client-Protocol/2.71",
	"curl/8.5.0",
	"Wget/1.21.4",
	"Go-http-client/1.1",
	"python-requests/2.32.3",
	"AppleCoreMedia/1.0.0.22B83 (iPhone; U; CPU OS 18_1 like Mac OS X; ru_ru)",
	"Roku/DVP-13.0 (13.0.0.4160-46)",
	"SmartTV/1.0 (Tizen 6.5; SAMSUNG QE55Q70) WebKit/537.36",
}

var contentTypes = []string{
	"text/html; charset=utf-8", "application/json", "image/jpeg", "image/webp", "image/png", "application/javascript",
	"text/css", "video/mp4", "application/octet-stream", "font/woff2", "image/gif", "text/plain; charset=utf-8",
	"application/x-protobuf", "image/svg+xml", "video/MP2T", "application/vnd.apple.mpegurl", "text/xml",
	"application/x-www-form-urlencoded", "audio/mpeg", "application/pdf",
}

func (w *world) buildHTTP(r *rand.Rand) {
	const nPaths = 20000
	paths := make([]string, 0, nPaths)
	paths = append(paths, "/", "/favicon.ico", "/robots.txt", "/index.html", "/generate_204", "/api/v1/ping")
	for len(paths) < nPaths {
		var p string
		switch r.IntN(14) {
		case 0:
			p = fmt.Sprintf("/static/js/main.%08x.chunk.js", r.Uint32())
		case 1:
			p = fmt.Sprintf("/static/css/app.%08x.css", r.Uint32())
		case 2:
			p = fmt.Sprintf("/images/%s/%d_%dx%d.jpg", words[r.IntN(len(words))], r.IntN(1_000_000), 100*(1+r.IntN(12)), 100*(1+r.IntN(9)))
		case 3:
			p = fmt.Sprintf("/api/v%d/%s/%d", 1+r.IntN(3), words[r.IntN(len(words))], r.IntN(10_000_000))
		case 4:
			p = "/watch?v=" + ytID(r)
		case 5:
			p = fmt.Sprintf("/search?q=%s+%s&p=%d", words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(10))
		case 6:
			p = fmt.Sprintf("/news/%d/%02d/%02d/%s-%s-%d.html", 2020+r.IntN(6), 1+r.IntN(12), 1+r.IntN(28), words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(100000))
		case 7:
			p = fmt.Sprintf("/video/%d/seg-%d-v1-a1.ts", r.IntN(100000), 1+r.IntN(600))
		case 8:
			p = fmt.Sprintf("/hls/%s/index.m3u8", ytID(r))
		case 9:
			p = fmt.Sprintf("/wp-content/uploads/%d/%02d/%s-%d.png", 2015+r.IntN(11), 1+r.IntN(12), words[r.IntN(len(words))], r.IntN(1000))
		case 10:
			p = fmt.Sprintf("/catalog/%s/%s/?page=%d&sort=price", words[r.IntN(len(words))], words[r.IntN(len(words))], 1+r.IntN(20))
		case 11:
			p = fmt.Sprintf("/product/%d/detail.aspx", r.IntN(300_000_000))
		case 12:
			p = fmt.Sprintf("/ajax/%s?_=%d", words[r.IntN(len(words))], 1_700_000_000_000+r.Int64N(100_000_000_000))
		default:
			p = fmt.Sprintf("/%s/%s/", words[r.IntN(len(words))], words[r.IntN(len(words))])
		}
		paths = append(paths, p)
	}
	w.paths = newZipfPool(paths, 0.9)

	refs := make([]string, 0, 5001)
	refs = append(refs, "") // no Referer is the most common case
	for len(refs) < cap(refs) {
		h := w.hosts.name(r.IntN(min(w.hosts.n, 2000)))
		refs = append(refs, "https://"+h+paths[r.IntN(2000)])
	}
	rw := zipf(len(refs), 0.8)
	rw[0] = 0
	for _, x := range rw {
		rw[0] += x
	}
	rw[0] *= 0.7 // 40 % of requests carry no Referer
	w.referers = newPool(refs, rw)

	cookies := make([]string, 0, 10001)
	cookies = append(cookies, "")
	for len(cookies) < cap(cookies) {
		var c string
		switch r.IntN(4) {
		case 0:
			c = fmt.Sprintf("_ga=GA1.2.%d.%d; _ym_uid=%d; _ym_d=%d", r.Uint32(), 1_600_000_000+r.IntN(140_000_000), r.Uint64()>>1, 1_600_000_000+r.IntN(140_000_000))
		case 1:
			c = fmt.Sprintf("sessionid=%016x%016x; csrftoken=%016x", r.Uint64(), r.Uint64(), r.Uint64())
		case 2:
			c = "PHPSESSID=" + strings.ToLower(strings.NewReplacer("-", "a", "_", "b").Replace(b64(r, 26)))
		default:
			c = fmt.Sprintf("yandexuid=%d%d; i=%s; is_gdpr=0", r.Uint32(), 1_700_000_000+r.IntN(40_000_000), b64(r, 40))
		}
		cookies = append(cookies, c)
	}
	cw := zipf(len(cookies), 0.5)
	cw[0] = 0
	for _, x := range cw {
		cw[0] += x
	}
	w.cookies = newPool(cookies, cw) // half the requests carry no Cookie

	w.userAgents = newZipfPool(userAgents, 0.9)
	w.contentTypes = newZipfPool(contentTypes, 1.0)

	locs := make([]string, 1000)
	for i := range locs {
		locs[i] = "https://" + w.hosts.name(r.IntN(min(w.hosts.n, 5000))) + paths[r.IntN(len(paths))]
	}
	w.locations = newZipfPool(locs, 0.75)

	// Client Hello cipher suites of common clients (first 16 kept, as the DPI does).
	clients := [][]uint16{
		{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		{0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		{0x1301, 0x1302, 0x1303, 0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f, 0xc008, 0xc012, 0x000a},
		{0x1301, 0x1302, 0x1303, 0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8, 0xc009, 0xc013, 0xc00a, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		{0xc02c, 0xc02b, 0xc030, 0xc02f, 0xc024, 0xc023, 0xc028, 0xc027, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x000a},
		{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff},
	}
	for _, c := range clients {
		grease := uint16(0x0a0a + 0x1010*uint16(r.IntN(15)))
		all := append([]uint16{grease}, c...)
		n := min(len(all), 16)
		b := make([]byte, 2*n)
		for i := range n {
			binary.BigEndian.PutUint16(b[2*i:], all[i])
		}
		w.cipherSuites = append(w.cipherSuites, tlsClient{hello: uint16(2 * len(all)), suites: string(b)})
	}
	w.tlsClients = newWeighted([]float64{50, 20, 15, 8, 4, 3})

	w.mplsLabels = []string{"", string([]byte{0x00, 0x3e, 0x81, 0x40}), string([]byte{0x01, 0x86, 0xa0, 0x3f, 0x00, 0x3e, 0x81, 0x40})}
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func b64(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = b64chars[r.IntN(64)]
	}
	return string(b)
}

func ytID(r *rand.Rand) string { return b64(r, 11) }

// dnsName encodes a domain name in DNS wire format (RFC 1035 §3.1).
func dnsName(name string) []byte {
	var b []byte
	for l := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func (w *world) buildDNS(r *rand.Rand) {
	cdn := []string{"%s.cdn.cloudflare.net", "%s.edgekey.net", "e%d.a.akamaiedge.net", "d%s.cloudfront.net", "%s.trafficmanager.net", "%s.azureedge.net", "%s.l.google.com", "%s.gslb.yandex.net", "%s.ngenix.net", "%s.cdnvideo.ru"}
	cn := make([]string, 300)
	for i := range cn {
		f := cdn[r.IntN(len(cdn))]
		var name string
		if strings.Contains(f, "%d") {
			name = fmt.Sprintf(f, r.IntN(10000))
		} else {
			name = fmt.Sprintf(f, strings.ToLower(b64(r, 6+r.IntN(6))))
		}
		name = strings.ReplaceAll(name, "_", "x")
		cn[i] = string(dnsName(name))
	}
	w.cnames = newZipfPool(cn, 0.8)
	mx := make([]string, 100)
	ns := make([]string, 100)
	for i := range mx {
		d := words[r.IntN(len(words))] + "." + tlds[r.IntN(len(tlds))]
		pref := []byte{0, byte(10 * (1 + r.IntN(3)))}
		mx[i] = string(append(pref, dnsName("mx"+fmt.Sprint(1+r.IntN(3))+"."+d)...))
		ns[i] = string(dnsName(fmt.Sprintf("ns%d.%s", 1+r.IntN(4), d)))
	}
	w.mx = newZipfPool(mx, 0.8)
	w.ns = newZipfPool(ns, 0.8)
	txts := []string{"v=spf1 include:_spf.google.com ~all", "v=spf1 redirect=_spf.yandex.net", "google-site-verification=" + b64(r, 43), "yandex-verification: " + fmt.Sprintf("%016x", r.Uint64()), "v=DMARC1; p=none; rua=mailto:dmarc@example.ru"}
	for i, t := range txts {
		txts[i] = string(append([]byte{byte(len(t))}, t...))
	}
	w.txt = newZipfPool(txts, 1)
	w.resolversV4 = []uint32{0x08080808, 0x08080404, 0x01010101, 0x4d580808, 0x0afe0035, 0x0afe0135}
	w.resolversV6Hi = []uint64{0x2001486048600000, 0x2606470047000000, 0x2a02061800000000, 0x20010db8ffff0000}
	w.resolversV6Lo = []uint64{0x8888, 0x1111, 0x1, 0x53}
}

func (w *world) buildMeta(r *rand.Rand) {
	name := func() string { return firstNames[r.IntN(len(firstNames))] + "." + lastNames[r.IntN(len(lastNames))] }
	mailDomains := []string{"mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "rambler.ru", "outlook.com", "company.ru", "corp.example.com"}
	sipDomains := []string{"sip.zadarma.com", "ims.mnc001.mcc250.3gppnetwork.org", "sip.mangotele.com", "pbx.company.ru", "sipnet.ru", "voip.beeline.ru"}

	n := 5000
	uri, from, to, callID := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range n {
		d := sipDomains[r.IntN(len(sipDomains))]
		num := fmt.Sprintf("+79%09d", r.IntN(1_000_000_000))
		if r.IntN(3) == 0 {
			num = fmt.Sprint(100 + r.IntN(900))
		}
		uri[i] = "sip:" + num + "@" + d
		from[i] = fmt.Sprintf("\"%s\" <sip:%s@%s>;tag=%x", name(), num, d, r.Uint32())
		to[i] = fmt.Sprintf("<sip:+79%09d@%s>", r.IntN(1_000_000_000), d)
		callID[i] = fmt.Sprintf("%08x-%04x-%04x@10.%d.%d.%d", r.Uint32(), r.IntN(0x10000), r.IntN(0x10000), r.IntN(256), r.IntN(256), r.IntN(256))
	}
	w.sipURI = newZipfPool(uri, 0.75)
	w.sipFrom = newZipfPool(from, 0.75)
	w.sipTo = newZipfPool(to, 0.75)
	w.sipCallID = newZipfPool(callID, 0.5)
	w.sipUAgent = newZipfPool([]string{"Linphone/5.2.0 (belle-sip/5.2.0)", "MicroSIP/3.21.3", "Zoiper rv2.10.19.4", "Yealink SIP-T46S 66.86.0.15", "Grandstream GXP1625 1.0.11.2", "Asterisk PBX 18.20.0", "FreeSWITCH-mod_sofia/1.10.10", "Cisco-SIPGateway/IOS-15.x", "Bria 6 release 6.8.0", "Huawei IMS"}, 1)
	gws := make([]string, 50)
	for i := range gws {
		gws[i] = fmt.Sprintf("10.%d.%d.%d,%s", r.IntN(256), r.IntN(256), 1+r.IntN(254), sipDomains[r.IntN(len(sipDomains))])
	}
	w.sipGateways = newZipfPool(gws, 1)

	servers := make([]string, 300)
	for i := range servers {
		if r.IntN(3) == 0 {
			servers[i] = fmt.Sprintf("%d.%d.%d.%d", 80+r.IntN(120), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		} else {
			servers[i] = "ftp." + words[r.IntN(len(words))] + "." + tlds[r.IntN(len(tlds))]
		}
	}
	w.ftpServer = newZipfPool(servers, 1)
	users := make([]string, 2000)
	pass := make([]string, 2000)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", lastNames[r.IntN(len(lastNames))], r.IntN(100))
		pass[i] = b64(r, 8+r.IntN(8))
	}
	users[0], users[1], pass[0] = "anonymous", "ftp", "guest@"
	w.ftpUser = newZipfPool(users, 1)
	w.ftpPassword = newZipfPool(pass, 1)

	jids := make([]string, 3000)
	screens := make([]string, 3000)
	uins := make([]string, 3000)
	recv := make([]string, 3000)
	for i := range jids {
		jids[i] = fmt.Sprintf("%s@%s", strings.ReplaceAll(name(), ".", "_"), []string{"jabber.ru", "xmpp.jp", "zello.com", "icq.com", "jabber.company.ru"}[r.IntN(5)])
		fn := firstNames[r.IntN(len(firstNames))]
		screens[i] = strings.ToUpper(fn[:1]) + fn[1:]
		uins[i] = fmt.Sprint(100_000_000 + r.IntN(900_000_000))
		recv[i] = jids[r.IntN(i+1)]
		if r.IntN(4) == 0 {
			recv[i] += "," + jids[r.IntN(i+1)]
		}
	}
	w.imLogin = newZipfPool(jids, 0.75)
	w.imPassw = newZipfPool(pass, 1)
	w.imScreen = newZipfPool(screens, 0.75)
	w.imUIN = newZipfPool(uins, 0.75)
	w.imReceivers = newZipfPool(recv, 0.75)

	addrs := make([]string, 5000)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("%s%d@%s", name(), r.IntN(100), mailDomains[r.IntN(len(mailDomains))])
	}
	w.mailAddr = newZipfPool(addrs, 0.8)
	w.mailSubject = newZipfPool([]string{"Re: счёт на оплату", "Invoice #10234", "Встреча в четверг", "Fwd: документы", "Your order has shipped", "Отчёт за месяц", "Password reset", "Приглашение на собеседование", "Re: Re: договор", "Newsletter", "Акт сверки", "Weekly report", ""}, 1)
	w.mailServers = newZipfPool([]string{"smtp.mail.ru", "smtp.yandex.ru", "smtp.gmail.com", "imap.mail.ru", "imap.yandex.ru", "pop.mail.ru", "outlook.office365.com", "mail.company.ru", "mx1.corp.example.com"}, 1)

	raw := make([]string, 500)
	for i := range raw {
		switch r.IntN(3) {
		case 0:
			raw[i] = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n", w.paths.s[r.IntN(500)], w.hosts.name(r.IntN(500)))
		case 1:
			raw[i] = fmt.Sprintf("USER %s\r\n", users[r.IntN(len(users))])
		default:
			raw[i] = fmt.Sprintf("EHLO %s\r\nMAIL FROM:<%s>\r\n", w.hosts.name(r.IntN(500)), addrs[r.IntN(len(addrs))])
		}
	}
	w.rawData = newZipfPool(raw, 0.8)
}
