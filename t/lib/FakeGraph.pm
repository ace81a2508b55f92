package FakeGraph;

# A fake Graph API on a loopback port: HTTP/1.1 with keep-alive, one
# process, many connections.  It records every request (one JSON line in
# requests.log: time, path, authorization, body) and answers by rules the
# test writes to graph.rules (JSON, re-read when it changes):
#
#   [ { "to": "5511...",        match a recipient ("*" or absent: any)
#       "path": "^/media-file/M1",  match the request's path (a regex)
#       "code": 131056,         answer this Meta error (HTTP 400) ...
#       "http": 500,            ... or this HTTP status with no body
#       "times": 2,             only the first n matching requests
#       "delay_ms": 300,        answer late
#       "close": 1 } ]          close the connection without an answer
#
# Otherwise: 200 with a new wamid.  Media (media(): files the test puts
# in place) as Meta serves it: GET /<version>/<media id> answers the URL
# (/media-file/<id>?n=<count>, valid until a rule says otherwise), the MIME
# type, the SHA-256 in hex and the size; GET of that URL with a bearer
# token answers the bytes.

use strict;
use warnings;

use Digest::SHA ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %o) = @_;
    my $self = bless { dir => $o{dir}, owner => $$ }, $class;
    $self->{log} = "$o{dir}/requests.log";
    $self->{rules} = "$o{dir}/graph.rules";
    return $self;
}

sub start {
    my ($self) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => 0, Listen => 128, ReuseAddr => 1, Proto => 'tcp')
        or die "fake graph: $!";
    $self->{port} = $listen->sockport;
    $self->rules([]);
    open my $fh, '>', $self->{log} or die; close $fh;

    my $pid = fork // die;
    if ($pid == 0) {
        $self->serve($listen);
        POSIX::_exit(0);
    }
    close $listen;
    $self->{pid} = $pid;
    return $self->url;
}

sub url { 'http://127.0.0.1:' . $_[0]{port} }

# media(id => bytes, sha256 => what Meta says (default: right), mime =>
# type, size => 0 to leave file_size out)
sub media {
    my ($self, $id, $bytes, %o) = @_;
    mkdir "$self->{dir}/media";
    open my $fh, '>:raw', "$self->{dir}/media/$id" or die;
    print $fh $bytes;
    close $fh;
    open $fh, '>', "$self->{dir}/media/$id.json" or die;
    print $fh encode_json({
        sha256 => $o{sha256} // Digest::SHA::sha256_hex($bytes),
        mime_type => $o{mime} // 'application/octet-stream',
        (($o{size} // 1) ? (file_size => length $bytes) : ()) });
    close $fh;
}

sub rules {
    my ($self, $rules) = @_;
    my $tmp = "$self->{rules}.tmp";
    open my $fh, '>', $tmp or die;
    print $fh encode_json($rules);
    close $fh;
    rename $tmp, $self->{rules};
}

sub requests {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @r;
    while (my $line = <$fh>) {
        my $r = eval { decode_json($line) } or next;
        $r->{json} = eval { decode_json($r->{body}) } || {};
        push @r, $r;
    }
    return @r;
}

# the rate the requests came at (times in seconds, sorted) and the most
# seen in any one second
sub pace {
    my (@t) = @_;
    my ($max, $j) = (0, 0);
    for my $i (0 .. $#t) {
        $j = $i if $j < $i;
        $j++ while $j + 1 <= $#t && $t[$j + 1] - $t[$i] < 1;
        $max = $j - $i + 1 if $j - $i + 1 > $max;
    }
    my $rate = @t > 1 && $t[-1] > $t[0] ? (@t - 1) / ($t[-1] - $t[0]) : 0;
    return ($rate, $max);
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# reaping the server sets $?: at exit it would replace the exit status
sub DESTROY { local $?; $_[0]->stop if $$ == $_[0]{owner} }

# --- the server ---------------------------------------------------------

sub serve {
    my ($self, $listen) = @_;
    my $sel = IO::Select->new($listen);
    my (%buf, @later, %count);
    my ($rules, $mtime) = ([], 0);
    my $n = 0;
    open my $log, '>>', $self->{log} or die;
    $log->autoflush(1);
    $SIG{TERM} = sub { POSIX::_exit(0) };

    while (1) {
        my $wait = 0.05;
        my $now = time;
        if (@later) {
            @later = sort { $a->[0] <=> $b->[0] } @later;
            while (@later && $later[0][0] <= $now) {
                my $l = shift @later;
                syswrite $l->[1], $l->[2] if $l->[1]->connected;
            }
            $wait = @later ? $later[0][0] - $now : 0.05;
            $wait = 0 if $wait < 0;
        }

        for my $s ($sel->can_read($wait)) {
            if ($s == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }
            my $got = sysread $s, my $chunk, 65536;
            if (!$got) {
                $sel->remove($s); delete $buf{$s}; close $s;
                next;
            }
            $buf{$s} .= $chunk;

            while ($buf{$s} =~ /^(.*?)\r\n\r\n/s) {
                my $head = $1;
                my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
                $len //= 0;
                my $total = length($head) + 4 + $len;
                last if length $buf{$s} < $total;
                my $body = substr $buf{$s}, length($head) + 4, $len;
                substr($buf{$s}, 0, $total) = '';
                my ($method, $path) = $head =~ /^(\S+) (\S+)/;
                my ($auth) = $head =~ /^authorization:\s*(.*?)\s*$/mi;

                my @st = stat $self->{rules};
                if (@st && $st[9] . $st[7] ne $mtime) {
                    $mtime = $st[9] . $st[7];
                    if (open my $fh, '<', $self->{rules}) {
                        local $/;
                        $rules = eval { decode_json(<$fh>) } || [];
                        %count = ();
                    }
                }

                my $req = eval { decode_json($body) } || {};
                my $to = $req->{to} // $req->{recipient} // '';
                print $log encode_json({ t => time, method => $method,
                    path => $path, auth => $auth // '', body => $body }),
                    "\n";

                my ($rule, $i) = (undef, 0);
                for my $r (@$rules) {
                    $i++;
                    next if defined $r->{to} && $r->{to} ne '*'
                            && $r->{to} ne $to;
                    next if defined $r->{path} && $path !~ /$r->{path}/;
                    next if $r->{times} && ($count{$i} // 0) >= $r->{times};
                    $count{$i}++;
                    $rule = $r;
                    last;
                }

                if ($rule && $rule->{close}) {
                    $sel->remove($s); delete $buf{$s}; close $s;
                    last;
                }

                my ($status, $out);
                if ($rule && $rule->{code}) {
                    $status = $rule->{http} // 400;
                    $out = encode_json({ error => {
                        message => "(#$rule->{code}) fake error",
                        type => 'OAuthException', code => $rule->{code},
                        error_data => { details => 'fake' },
                        fbtrace_id => 'fake' } });
                } elsif ($rule && $rule->{http}) {
                    $status = $rule->{http};
                    $out = '';
                } elsif (my $m = $self->media_answer($method, $path,
                                                     $auth, ++$n)) {
                    ($status, $out) = @$m;
                } elsif (($req->{status} // '') eq 'read') {
                    ($status, $out) = (200, '{"success":true}');
                } else {
                    $n++;
                    $status = 200;
                    $out = encode_json({ messaging_product => 'whatsapp',
                        contacts => [ { input => $to, wa_id => $to } ],
                        messages => [ { id => "wamid.fake.$$.$n" } ] });
                }
                my $type = $path =~ m{^/media-file/}
                    ? 'application/octet-stream' : 'application/json';
                my $resp = "HTTP/1.1 $status X\r\nContent-Type: "
                    . "$type\r\nContent-Length: " . length($out)
                    . "\r\n\r\n$out";
                if ($rule && $rule->{delay_ms}) {
                    push @later, [ time + $rule->{delay_ms} / 1000, $s,
                                   $resp ];
                } else {
                    syswrite $s, $resp;
                }
            }
        }
    }
}

# a media id resolved, or a media file: [ status, body ], or undef
sub media_answer {
    my ($self, $method, $path, $auth, $n) = @_;
    return undef unless $method eq 'GET';
    my $id;
    if ((($id) = $path =~ m{^/v[\d.]+/([\w.-]+)(?:\?|$)})) {
        return undef unless -f "$self->{dir}/media/$id.json";
        open my $fh, '<', "$self->{dir}/media/$id.json" or return undef;
        my $meta = decode_json(do { local $/; <$fh> });
        return [ 200, encode_json({ messaging_product => 'whatsapp',
            url => $self->url . "/media-file/$id?n=$n", id => $id,
            %$meta }) ];
    }
    return undef unless (($id) = $path =~ m{^/media-file/([\w.-]+)});
    return [ 401, '{"error":{"code":190,"message":"no token"}}' ]
        unless ($auth // '') =~ /^Bearer \S/;
    open my $fh, '<:raw', "$self->{dir}/media/$id" or return [ 404, '' ];
    return [ 200, do { local $/; <$fh> } ];
}

1;
