package providers

// HMACCompileForTest checks and compiles p as Provision does, without a
// Caddy context, for the fuzz targets.
func HMACCompileForTest(p *HMAC) error {
	c, err := p.compile()
	if err == nil {
		p.c = c
	}
	return err
}
