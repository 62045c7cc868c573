module github.com/sztp-agent/sztp-agent

go 1.25.0

require (
	github.com/cavaliergopher/grab/v3 v3.0.1
	go.yaml.in/yaml/v3 v3.0.6
)
