package ipfix_test

import "time"

var fixedNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
