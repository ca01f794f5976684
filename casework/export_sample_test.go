package casework

// SetSampleChunkSize shrinks the chunk size so that small test files span
// several chunks. Call it before storing anything.
func (s *Service) SetSampleChunkSize(n int) { s.smp.chunkSize = n }

// SampleChunkAAD is the associated data of a sample's chunk.
func SampleChunkAAD(id int64, seq int, final bool) []byte { return chunkAAD(id, seq, final) }
