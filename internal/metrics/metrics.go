// Package metrics defines Embargo's Prometheus metrics on controller-runtime's registry.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// Decisions counts admission decisions by resource kind, action in force and result.
	Decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_admission_decisions_total",
		Help: "Admission decisions by kind, policy action and result (allowed, denied, warned, audited, error).",
	}, []string{"kind", "action", "result"})

	// ScanDuration observes image scans by outcome.
	ScanDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "embargo_scan_duration_seconds",
		Help:    "Time to pull and scan one image digest.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300},
	}, []string{"outcome"})

	// CacheLookups counts scan-cache lookups by result (hit, miss).
	CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_cache_lookups_total",
		Help: "Scan cache lookups by result.",
	}, []string{"result"})

	// ScansInFlight is the number of scans running now.
	ScansInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "embargo_scans_in_flight",
		Help: "Image scans running now.",
	})

	// Violations is the audit's violation count by policy, namespace and vendor.
	Violations = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "embargo_violations",
		Help: "Running containers with banned-vendor software, by policy, namespace and vendor.",
	}, []string{"policy", "namespace", "vendor"})

	// ImagesScanned counts ImageScans by phase.
	ImagesScanned = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "embargo_images",
		Help: "Image digests known to the audit, by phase (Scanned, Failed).",
	}, []string{"phase"})

	// StoreErrors counts failed reads and writes of persisted scan records (ImageScans), by
	// operation (load, save, status).
	StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_scan_store_errors_total",
		Help: "Failed loads and saves of persisted scan records (ImageScans), by operation.",
	}, []string{"op"})

	// ImageScanWrites counts ImageScan status writes; only the leader writes.
	ImageScanWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "embargo_imagescan_status_writes_total",
		Help: "ImageScan status updates written by this replica.",
	})

	// ImageScanRecomputes counts what policy changes did to the ImageScans' findings: "queued",
	// one per ImageScan queued for recomputing because the vendors changed; "skipped", one per
	// policy change that left the vendors, and so every finding, as they were.
	ImageScanRecomputes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_imagescan_recomputes_total",
		Help: "ImageScans queued for recomputing their findings after a VendorPolicy change (queued), and changes that needed none (skipped).",
	}, []string{"result"})

	// AuditEvaluations counts audits of one policy over the cluster's pods (each evaluates every
	// pod it selects): what a cluster change costs the leader. An audit counts once it is over,
	// its status written.
	AuditEvaluations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_audit_evaluations_total",
		Help: "Audits of a VendorPolicy over the pods it selects, by policy.",
	}, []string{"policy"})

	// PolicyReportWrites counts PolicyReport creations, updates and deletions, by namespace:
	// the reporter writes only what changed, and an update that changes nothing is invisible
	// in the API server (no new resourceVersion), so this is where a needless one shows.
	PolicyReportWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "embargo_policyreport_writes_total",
		Help: "PolicyReports created, updated or deleted by this replica, by namespace.",
	}, []string{"namespace"})

	// StatusWrites counts VendorPolicy status writes; only the leader writes.
	StatusWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "embargo_policy_status_writes_total",
		Help: "VendorPolicy status updates written by this replica.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(Decisions, ScanDuration, CacheLookups, ScansInFlight, Violations, ImagesScanned, StatusWrites, StoreErrors, ImageScanWrites, ImageScanRecomputes, AuditEvaluations, PolicyReportWrites)
}
