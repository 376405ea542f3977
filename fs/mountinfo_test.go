package fs

import "testing"

func TestParseMountinfoLine(t *testing.T) {
	tests := []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			mountEntry{id: 36, parent: 35, major: 98, minor: 0, point: "/mnt/parent", fstype: "ext3"}, true},
		{"712 29 0:75 / /tmp/my\\040esc rw,nosuid,nodev,relatime - fuse.escfs escfs ro,user_id=0,group_id=0",
			mountEntry{id: 712, parent: 29, major: 0, minor: 75, point: "/tmp/my esc", fstype: "fuse.escfs"}, true},
		{"40 29 0:34 / /run/x rw shared:5 master:2 - tmpfs tmpfs rw",
			mountEntry{id: 40, parent: 29, major: 0, minor: 34, point: "/run/x", fstype: "tmpfs"}, true},
		{"garbage", mountEntry{}, false},
		{"1 2 0:3 / /x rw -", mountEntry{}, false},
		{"a 2 0:3 / /x rw - tmpfs t rw", mountEntry{}, false},
	}
	for _, tt := range tests {
		got, ok := parseMountinfoLine(tt.line)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMountinfoLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// TestTopMount checks that of mounts stacked on one mount point the one on
// top wins, whatever the order of the lines.
func TestTopMount(t *testing.T) {
	tmpfs := mountEntry{id: 10, parent: 1, point: "/m", fstype: "tmpfs"}
	escfs := mountEntry{id: 20, parent: 10, point: "/m", fstype: "fuse.escfs"}
	other := mountEntry{id: 30, parent: 1, point: "/other", fstype: "ext4"}
	tests := []struct {
		name    string
		entries []mountEntry
		want    string
		ok      bool
	}{
		{"escfs over tmpfs", []mountEntry{tmpfs, escfs, other}, "fuse.escfs", true},
		{"listed top first", []mountEntry{escfs, other, tmpfs}, "fuse.escfs", true},
		{"one", []mountEntry{tmpfs, other}, "tmpfs", true},
		{"none", []mountEntry{other}, "", false},
	}
	for _, tt := range tests {
		got, ok := topMount(tt.entries, "/m")
		if got.fstype != tt.want || ok != tt.ok {
			t.Errorf("%s: topMount = %q, %v; want %q, %v", tt.name, got.fstype, ok, tt.want, tt.ok)
		}
	}
}
