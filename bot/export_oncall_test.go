package bot

// Internals the on-call tests reach for.
var (
	Duration = duration
	Zoned    = zoned
)
