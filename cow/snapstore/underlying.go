package snapstore

// Wrapper is a Store that decorates another (metrics, timeouts): Unwrap
// returns the one it decorates.
type Wrapper interface {
	Store
	Unwrap() Store
}

// Underlying returns the store st decorates, through every Wrapper: the
// store that keeps the objects (a *Dir, an S3 bucket).
func Underlying(st Store) Store {
	for {
		w, ok := st.(Wrapper)
		if !ok {
			return st
		}
		st = w.Unwrap()
	}
}
