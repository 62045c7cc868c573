package cli

import "time"

// timeNow is the clock the command line reads (a variable for tests).
var timeNow = time.Now
