package storage

// Properties are what a backend can and cannot do, for callers to branch on
// instead of guessing from its location. The zero value describes a local,
// writable backend that allows Remove: what a backend without Properties is
// taken to be.
type Properties struct {
	// Remote is set when every request costs a network round trip, so
	// readers should fetch whole packs once and cache them rather than
	// load many small ranges.
	Remote bool
	// ReadOnly is set when Save, SaveStream and Remove always fail with an
	// error wrapping ErrForbidden.
	ReadOnly bool
	// AppendOnly is set when Remove is known to fail with ErrForbidden for
	// every kind but KindLocks. A backend that only learns it from a
	// refused Remove (a coffer server decides per client) leaves it unset.
	AppendOnly bool
}

// Propertied is implemented by backends and decorators that declare their
// Properties. Decorators forward their inner backend's, changed by what
// they add.
type Propertied interface {
	Properties() Properties
}

// PropertiesOf returns st's Properties, or the zero value when st does not
// declare any.
func PropertiesOf(st Storage) Properties {
	if p, ok := st.(Propertied); ok {
		return p.Properties()
	}
	return Properties{}
}

// Unwrapper is implemented by decorators: Unwrap returns the backend they
// wrap, so a caller can reach a backend's own methods (such as local's
// CleanTemp) through them.
type Unwrapper interface {
	Unwrap() Storage
}

// As returns the first storage in st's chain of decorators (st itself,
// then what each Unwrap returns) that is a T, so a caller reaches a
// backend's own methods through decorators that do not forward them. It
// never looks past a decorator that declares ReadOnly, whose backend's own
// methods could write.
func As[T any](st Storage) (T, bool) {
	for i := 0; st != nil && i < 64; i++ {
		if t, ok := st.(T); ok {
			return t, true
		}
		u, ok := st.(Unwrapper)
		if !ok || PropertiesOf(st).ReadOnly {
			break
		}
		st = u.Unwrap()
	}
	var zero T
	return zero, false
}
