package control

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func postParams(t *testing.T, body string) (*params, *APIError) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return readParams(httptest.NewRecorder(), r)
}

func TestReadParams(t *testing.T) {
	tests := []struct {
		name string
		body string
		code string // "" means accepted
	}{
		{"empty", "", ""},
		{"simple", "Action=DescribeVolumes&Version=2016-11-15", ""},
		{"duplicate key", "VolumeId.1=a&VolumeId.1=b", CodeInvalidParameterValue},
		{"bad escape", "Action=%zz", CodeMalformedQueryString},
		{"semicolon", "Action=a;b", CodeMalformedQueryString},
		{"invalid utf-8 value", "Action=%ff%fe", CodeInvalidParameterValue},
		{"invalid utf-8 key", "%ff=1", CodeInvalidParameterValue},
		{"empty key", "=1", CodeMalformedQueryString},
		{"too large", "Action=" + strings.Repeat("a", MaxBodyBytes), CodeRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, e := postParams(t, tt.body)
			got := ""
			if e != nil {
				got = e.Code
			}
			if got != tt.code {
				t.Fatalf("code = %q, want %q (%v)", got, tt.code, e)
			}
		})
	}
}

func TestReadParamsQueryAndBodyMerge(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/?Action=DescribeVolumes", strings.NewReader("Version=2016-11-15"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	p, e := readParams(httptest.NewRecorder(), r)
	if e != nil {
		t.Fatal(e)
	}
	if a, _ := p.get("Action"); a != "DescribeVolumes" {
		t.Errorf("Action = %q", a)
	}
	r = httptest.NewRequest(http.MethodPost, "/?Action=X", strings.NewReader("Action=Y"))
	if _, e := readParams(httptest.NewRecorder(), r); e == nil || e.Code != CodeInvalidParameterValue {
		t.Errorf("Action in query and body: %v, want InvalidParameterValue", e)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	if _, e := readParams(httptest.NewRecorder(), r); e == nil || e.Code != CodeInvalidParameterValue {
		t.Errorf("JSON body: %v, want InvalidParameterValue", e)
	}
}

func TestIndexes(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []int
		code string
	}{
		{"none", "Other=1", nil, ""},
		{"in order", "VolumeId.1=a&VolumeId.2=b", []int{1, 2}, ""},
		{"sorted numerically", "VolumeId.10=a&VolumeId.9=b&VolumeId.2=c", []int{2, 9, 10}, ""},
		{"gaps allowed", "VolumeId.1=a&VolumeId.5=b", []int{1, 5}, ""},
		{"nested keys count once", "VolumeId.3.X=a&VolumeId.3.Y=b", []int{3}, ""},
		{"max index", "VolumeId.1000=a", []int{1000}, ""},
		{"zero", "VolumeId.0=a", nil, CodeInvalidParameterValue},
		{"leading zero", "VolumeId.01=a", nil, CodeInvalidParameterValue},
		{"too big", "VolumeId.1001=a", nil, CodeInvalidParameterValue},
		{"huge", "VolumeId.99999999999999999999=a", nil, CodeInvalidParameterValue},
		{"negative", "VolumeId.-1=a", nil, CodeInvalidParameterValue},
		{"garbage", "VolumeId.x=a", nil, CodeInvalidParameterValue},
		{"empty index", "VolumeId.=a", nil, CodeInvalidParameterValue},
		{"plus sign", "VolumeId.%2B1=a", nil, CodeInvalidParameterValue},
		{"other prefix untouched", "VolumeIds.1=a&VolumeId=b", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, e := postParams(t, tt.body)
			if e != nil {
				t.Fatal(e)
			}
			got, e := p.indexes("VolumeId")
			code := ""
			if e != nil {
				code = e.Code
			}
			if code != tt.code || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("indexes = %v, %q; want %v, %q", got, code, tt.want, tt.code)
			}
		})
	}
}

func TestStringListAndUnknown(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		unknown string // the parameter unknown() refuses, "" for none
	}{
		{"list", "VolumeId.2=b&VolumeId.1=a", []string{"a", "b"}, ""},
		{"member with sub-key", "VolumeId.1=a&VolumeId.1.X=b", []string{"a"}, "VolumeId.1.X"},
		{"only sub-key", "VolumeId.1.X=b", nil, "VolumeId.1.X"},
		{"unknown parameter", "VolumeId.1=a&Bogus=1", []string{"a"}, "Bogus"},
		{"common parameters ignored", "Action=A&Version=V&AWSAccessKeyId=k&Signature=s&SignatureMethod=m&SignatureVersion=2&Timestamp=t&Expires=e&SecurityToken=x&X-Amz-Date=d", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, e := postParams(t, tt.body)
			if e != nil {
				t.Fatal(e)
			}
			got, e := p.stringList("VolumeId")
			if e != nil {
				t.Fatal(e)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stringList = %q, want %q", got, tt.want)
			}
			e = p.unknown()
			switch {
			case tt.unknown == "" && e != nil:
				t.Errorf("unknown() = %v, want nil", e)
			case tt.unknown != "" && (e == nil || e.Code != CodeUnknownParameter || !strings.Contains(e.Message, tt.unknown)):
				t.Errorf("unknown() = %v, want UnknownParameter naming %s", e, tt.unknown)
			}
		})
	}
}

func TestScalars(t *testing.T) {
	tests := []struct {
		value   string
		boolean bool
		boolOK  bool
		integer int64
		intOK   bool
	}{
		{"true", true, true, 0, false},
		{"false", false, true, 0, false},
		{"True", false, false, 0, false},
		{"1", false, false, 1, true},
		{"0", false, false, 0, true},
		{"65536", false, false, 65536, true},
		{"", false, false, 0, false},
		{"-1", false, false, 0, false},
		{"+1", false, false, 0, false},
		{" 1", false, false, 0, false},
		{"1e3", false, false, 0, false},
		{"99999999999999999999", false, false, 0, false},
	}
	for _, tt := range tests {
		p, e := postParams(t, "X="+tt.value)
		if e != nil {
			t.Fatal(e)
		}
		b, e := p.boolean("X")
		if (e == nil) != tt.boolOK || b != tt.boolean {
			t.Errorf("boolean(%q) = %v, %v", tt.value, b, e)
		}
		n, given, e := p.integer("X")
		if !given || (e == nil) != tt.intOK || n != tt.integer {
			t.Errorf("integer(%q) = %d, %v, %v", tt.value, n, given, e)
		}
	}
	p, _ := postParams(t, "")
	if b, e := p.boolean("X"); b || e != nil {
		t.Errorf("absent boolean = %v, %v", b, e)
	}
	if _, given, e := p.integer("X"); given || e != nil {
		t.Errorf("absent integer: given=%v, %v", given, e)
	}
}
