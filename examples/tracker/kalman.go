// Package tracker is the pwsa example: a per-frame multi-target tracking
// loop. Each frame, synthetic targets move, a sensor reports noisy
// positions, each measurement is associated with its nearest track and
// every track's constant-velocity Kalman filter predicts and updates. The
// frame's processing time is reported as `latency_ms`.
package tracker

// Filter is a 2-D constant-velocity Kalman filter: state (x, y, vx, vy),
// position measurements. The 4x4 covariance is kept in full, as a real
// tracker would.
type Filter struct {
	X [4]float64    `json:"x"`
	P [4][4]float64 `json:"p"`
}

// NewFilter starts a filter at a measured position with unknown velocity.
func NewFilter(x, y float64) Filter {
	var f Filter
	f.X = [4]float64{x, y, 0, 0}
	f.P = [4][4]float64{{10, 0, 0, 0}, {0, 10, 0, 0}, {0, 0, 100, 0}, {0, 0, 0, 100}}
	return f
}

// Predict advances the filter by dt with process noise q.
func (f *Filter) Predict(dt, q float64) {
	// x' = F x with F = [[1,0,dt,0],[0,1,0,dt],[0,0,1,0],[0,0,0,1]].
	f.X[0] += dt * f.X[2]
	f.X[1] += dt * f.X[3]
	// P' = F P F^T + Q.
	var fp [4][4]float64
	for j := 0; j < 4; j++ {
		fp[0][j] = f.P[0][j] + dt*f.P[2][j]
		fp[1][j] = f.P[1][j] + dt*f.P[3][j]
		fp[2][j] = f.P[2][j]
		fp[3][j] = f.P[3][j]
	}
	for i := 0; i < 4; i++ {
		f.P[i][0] = fp[i][0] + dt*fp[i][2]
		f.P[i][1] = fp[i][1] + dt*fp[i][3]
		f.P[i][2] = fp[i][2]
		f.P[i][3] = fp[i][3]
	}
	dt2 := dt * dt
	f.P[0][0] += q * dt2 * dt2 / 4
	f.P[1][1] += q * dt2 * dt2 / 4
	f.P[0][2] += q * dt2 * dt / 2
	f.P[2][0] += q * dt2 * dt / 2
	f.P[1][3] += q * dt2 * dt / 2
	f.P[3][1] += q * dt2 * dt / 2
	f.P[2][2] += q * dt2
	f.P[3][3] += q * dt2
}

// Update folds in a position measurement (zx, zy) with noise variance r.
func (f *Filter) Update(zx, zy, r float64) {
	// H = [[1,0,0,0],[0,1,0,0]]; S = H P H^T + R (2x2); K = P H^T S^-1.
	s00, s01, s10, s11 := f.P[0][0]+r, f.P[0][1], f.P[1][0], f.P[1][1]+r
	det := s00*s11 - s01*s10
	if det == 0 {
		return
	}
	i00, i01, i10, i11 := s11/det, -s01/det, -s10/det, s00/det
	var k [4][2]float64
	for i := 0; i < 4; i++ {
		k[i][0] = f.P[i][0]*i00 + f.P[i][1]*i10
		k[i][1] = f.P[i][0]*i01 + f.P[i][1]*i11
	}
	yx, yy := zx-f.X[0], zy-f.X[1]
	for i := 0; i < 4; i++ {
		f.X[i] += k[i][0]*yx + k[i][1]*yy
	}
	// P = (I - K H) P.
	var np [4][4]float64
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			np[i][j] = f.P[i][j] - k[i][0]*f.P[0][j] - k[i][1]*f.P[1][j]
		}
	}
	f.P = np
}

// AlphaBeta is the cheap fallback a degraded tracker uses: a fixed-gain
// filter with no covariance.
func (f *Filter) AlphaBeta(zx, zy, dt float64) {
	const alpha, beta = 0.5, 0.1
	f.X[0] += dt * f.X[2]
	f.X[1] += dt * f.X[3]
	rx, ry := zx-f.X[0], zy-f.X[1]
	f.X[0] += alpha * rx
	f.X[1] += alpha * ry
	f.X[2] += beta / dt * rx
	f.X[3] += beta / dt * ry
}
