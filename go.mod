module github.com/sztp-agent/sztp-agent

go 1.25.0

require (
	github.com/cavaliergopher/grab/v3 v3.0.1
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/insomniacslk/dhcp v0.0.0-20260901064844-234b97448fae // indirect
	github.com/miekg/dns v1.1.73 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
