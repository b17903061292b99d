# Bakes a teleboot agent AMI from Amazon Linux 2023 and from Ubuntu 24.04:
# the teleboot-agent package, Teleport, agent.yaml from the variables below,
# and teleboot-agent.service enabled. Teleport's own unit is written by the
# agent at first boot, for the role the control server gives the instance.
#
#   npm run package
#   packer build -var control_endpoints='["control.internal.example.com:7443"]' \
#     -var control_ca_file=control-data/tls/ca.pem packaging/packer
#
# Packer 1.6 or later (Debian 12's; the amazon-ebs builder is built in). IMDSv2
# only and tags in instance metadata are set where instances are launched:
# launch-template.json beside this file.

packer {
  required_version = ">= 1.6.0"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "t4g.small with arch = arm64 (and packages built on an arm64 machine)"
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64: the packages' architecture"
}

variable "packages_dir" {
  type        = string
  default     = "dist/packages"
  description = "where npm run package wrote teleboot-agent_*.deb and teleboot-agent-*.rpm"
}

variable "agent_version" {
  type    = string
  default = "0.1.0"
}

variable "teleport_version" {
  type        = string
  default     = "17"
  description = "Teleport's major version: its package repository channel (stable/v17)"
}

variable "control_endpoints" {
  type        = list(string)
  default     = ["control.internal.example.com:7443"]
  description = "teleboot-control's gRPC listeners (host:port), tried in order"
}

variable "control_ca_file" {
  type        = string
  default     = "control-data/tls/ca.pem"
  description = "the control server's CA (<data_dir>/tls/ca.pem), baked as /etc/teleboot/control-ca.pem"
}

variable "control_server_name" {
  type        = string
  default     = ""
  description = "the name in the control server's certificate, when the endpoints' names are not in it"
}

variable "enrollment_method" {
  type        = string
  default     = "ec2"
  description = "ec2 (the signed instance identity document: nothing secret in the image) or join_token (from user-data)"
}

variable "log_level" {
  type    = string
  default = "info"
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
  deb_arch  = var.arch == "arm64" ? "arm64" : "amd64"
  rpm_arch  = var.arch == "arm64" ? "aarch64" : "x86_64"
  # JSON is YAML: the agent reads this file as written, with no text templating to break on a quote or a newline.
  agent_yaml = jsonencode({
    control = merge(
      { endpoints = var.control_endpoints, ca_file = "/etc/teleboot/control-ca.pem" },
      var.control_server_name == "" ? {} : { server_name = var.control_server_name },
    )
    enrollment = var.enrollment_method == "ec2" ? { method = "ec2" } : { method = "join_token", join_token_file = "/etc/teleboot/join-token" }
    teleport   = { binary = "/usr/local/bin/teleport", tctl = "/usr/local/bin/tctl" }
    log_level  = var.log_level
  })
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ec2-user"
  ami_name      = "teleboot-agent-al2023-${var.arch}-${local.timestamp}"
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-*-${var.arch}"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }
  tags = {
    Name          = "teleboot-agent-al2023"
    TelebootAgent = var.agent_version
  }
}

source "amazon-ebs" "ubuntu2404" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ubuntu"
  ami_name      = "teleboot-agent-ubuntu2404-${var.arch}-${local.timestamp}"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${local.deb_arch}-server-*"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["099720109477"] # Canonical
    most_recent = true
  }
  tags = {
    Name          = "teleboot-agent-ubuntu2404"
    TelebootAgent = var.agent_version
  }
}

build {
  sources = ["source.amazon-ebs.al2023", "source.amazon-ebs.ubuntu2404"]

  provisioner "file" {
    source      = var.control_ca_file
    destination = "/tmp/control-ca.pem"
  }

  provisioner "file" {
    only        = ["amazon-ebs.al2023"]
    source      = "${var.packages_dir}/teleboot-agent-${var.agent_version}-1.${local.rpm_arch}.rpm"
    destination = "/tmp/teleboot-agent.rpm"
  }

  provisioner "file" {
    only        = ["amazon-ebs.ubuntu2404"]
    source      = "${var.packages_dir}/teleboot-agent_${var.agent_version}_${local.deb_arch}.deb"
    destination = "/tmp/teleboot-agent.deb"
  }

  # Amazon Linux 2023: the agent package and Teleport from Teleport's RPM repository.
  provisioner "shell" {
    only             = ["amazon-ebs.al2023"]
    environment_vars = ["TELEPORT_MAJOR=${var.teleport_version}"]
    execute_command  = "sudo -E sh -eux '{{ .Path }}'"
    inline = [
      "dnf install -y /tmp/teleboot-agent.rpm",
      "dnf config-manager --add-repo \"https://yum.releases.teleport.dev/$(. /etc/os-release; echo $ID)/$(. /etc/os-release; echo $VERSION_ID)/Teleport/$(uname -m)/stable/v$TELEPORT_MAJOR/teleport.repo\"",
      "dnf install -y teleport",
    ]
  }

  # Ubuntu 24.04: the agent package and Teleport from Teleport's APT repository.
  provisioner "shell" {
    only             = ["amazon-ebs.ubuntu2404"]
    environment_vars = ["TELEPORT_MAJOR=${var.teleport_version}", "DEBIAN_FRONTEND=noninteractive"]
    execute_command  = "sudo -E sh -eux '{{ .Path }}'"
    inline = [
      "apt-get install -y /tmp/teleboot-agent.deb",
      "curl -fsSL https://apt.releases.teleport.dev/gpg -o /etc/apt/keyrings/teleport-archive-keyring.asc",
      "echo \"deb [signed-by=/etc/apt/keyrings/teleport-archive-keyring.asc] https://apt.releases.teleport.dev/ubuntu $(. /etc/os-release; echo $VERSION_CODENAME) stable/v$TELEPORT_MAJOR\" > /etc/apt/sources.list.d/teleport.list",
      "apt-get update",
      "apt-get install -y teleport",
    ]
  }

  # Both: agent.yaml and the CA, the agent enabled; Teleport's packaged unit stays off
  # (the agent writes and starts its own teleport.service for the role it is given).
  provisioner "shell" {
    environment_vars = ["AGENT_YAML=${local.agent_yaml}"]
    execute_command  = "sudo -E sh -eux '{{ .Path }}'"
    inline = [
      "install -m 0644 /tmp/control-ca.pem /etc/teleboot/control-ca.pem",
      "printf '%s\\n' \"$AGENT_YAML\" > /etc/teleboot/agent.yaml.new && chmod 0644 /etc/teleboot/agent.yaml.new && mv /etc/teleboot/agent.yaml.new /etc/teleboot/agent.yaml",
      "ln -sf /usr/bin/teleport /usr/local/bin/teleport && ln -sf /usr/bin/tctl /usr/local/bin/tctl",
      "systemctl disable teleport.service || true",
      "systemctl enable teleboot-agent.service",
      "rm -f /tmp/control-ca.pem /tmp/teleboot-agent.rpm /tmp/teleboot-agent.deb",
    ]
  }
}
