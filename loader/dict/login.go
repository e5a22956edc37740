package dict

import (
	"fmt"
	"strconv"
	"sync"
)

// LoginMode is a value of the legacy ULR_REPLACE_LOGIN_WITH_VCHANNEL.
type LoginMode uint8

const (
	LoginAsIs     LoginMode = 0 // the DPI's login
	LoginVChannel LoginMode = 1 // always the vchannel
	LoginIfEmpty  LoginMode = 2 // the vchannel when the DPI sent no login
)

var loginWords = [...]string{"off", "always", "if_empty"}

// String returns the mode's configuration word.
func (m LoginMode) String() string {
	if int(m) < len(loginWords) {
		return loginWords[m]
	}
	return strconv.Itoa(int(m))
}

// ParseLoginMode reads a mode from its word ("off", "always", "if_empty")
// or its legacy number ("0".."2").
func ParseLoginMode(s string) (LoginMode, error) {
	for i, w := range loginWords {
		if s == w || s == strconv.Itoa(i) {
			return LoginMode(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want 0..2 or off, always, if_empty", s)
}

// LoginPolicy is ULR_REPLACE_LOGIN_WITH_VCHANNEL with
// ULR_USE_DIC_WHEN_REPLACING_LOGIN.
type LoginPolicy struct {
	Replace LoginMode
	UseDict bool // the vchannel's name from vchannel_name_dic instead of its number
}

// Validate checks the mode.
func (p LoginPolicy) Validate() error {
	if p.Replace > LoginIfEmpty {
		return fmt.Errorf("replace login with vchannel: %d: want 0..2", p.Replace)
	}
	return nil
}

// Login returns the login a row is stored with, given the DPI's login and
// the row's vchannel (bridgeChannelNum, IPFIX 43823/2016). Replacing, the
// login becomes the vchannel's name from vchannel_name_dic when UseDict is
// set and the dictionary has it, else the vchannel number in decimal. It
// allocates nothing.
func (p LoginPolicy) Login(s *Set, login string, vchannel uint16) string {
	switch p.Replace {
	case LoginAsIs:
		return login
	case LoginIfEmpty:
		if login != "" {
			return login
		}
	}
	if p.UseDict {
		if name, ok := s.VChannelNames().VChannelName(vchannel); ok {
			return name
		}
	}
	return vchannelText(vchannel)
}

var (
	vchannelOnce  sync.Once
	vchannelTexts []string
)

// vchannelText is strconv.Itoa(v) without an allocation per call: the 65536
// strings are made once, on first use.
func vchannelText(v uint16) string {
	vchannelOnce.Do(func() {
		vchannelTexts = make([]string, 1<<16)
		for i := range vchannelTexts {
			vchannelTexts[i] = strconv.Itoa(i)
		}
	})
	return vchannelTexts[v]
}
