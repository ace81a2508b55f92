package WaTest;

# Test harness: each test gets its own directory, its own redis-server and
# the packaged nginx loading the built module, all on free loopback ports.
# Only Meta is faked: sign() and post() send webhooks the way Meta does.

use strict;
use warnings;

use Carp qw(croak);
# loaded before this file's END block, so that block runs before the one
# that turns the tests' outcome into the exit status
use Test::Builder ();
use Scalar::Util qw(weaken);
use File::Basename qw(dirname);
use File::Spec;
use Digest::SHA qw(hmac_sha256_hex hmac_sha1_hex);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $JSON = JSON::PP->new->ascii->canonical(0);

# the payloads the repository carries: t/fixtures/payloads/README.md
our $FIXTURES =
    File::Spec->rel2abs(dirname(__FILE__) . '/../fixtures/payloads');

# every stream entry a test leaves in its Redis is checked against the
# event contract (docs/schema/, tools/check-contract) when the test ends;
# what a test flushes or loses with a stopped Redis is kept first
our $CONTRACT =
    File::Spec->rel2abs(dirname(__FILE__) . '/../../tools/check-contract');
my (@live, %kept);

sub new {
    my ($class, %opt) = @_;

    my $self = bless {
        module => $ENV{WA_MODULE} || 'build/ngx_http_whatsapp_module.so',
        nginx => $ENV{WA_NGINX} || '/usr/sbin/nginx',
        fixtures => $ENV{WA_FIXTURES} || $FIXTURES,
        redis_bin => $ENV{WA_REDIS_SERVER} || 'redis-server',
        worker_bin => $ENV{WA_WORKER} || 'build/wa-relayd',
        secret => 'test_app_secret',
        token => 'test-verify-token',
        acl => $ENV{WA_REDIS_ACL},
        %opt,
        pids => {},
        owner => $$,
    }, $class;

    # a test of the installed packages uses nginx's own modules directory
    $self->{module} = File::Spec->rel2abs($self->{module});
    croak "module $self->{module} not built (make module)"
        unless -f $self->{module} || $opt{packaged};

    $self->{dir} = tempdir('wa-test-XXXXXX', TMPDIR => 1,
                           CLEANUP => !$ENV{WA_KEEP});
    # nginx workers run as nobody when the tests run as root
    chmod 0755, $self->{dir};
    $self->{http} = HTTP::Tiny->new(timeout => 15, keep_alive => 0);

    $self->write_file('secret', $self->{secret}, 0600);
    $self->write_file('token', $self->{token}, 0600);

    push @live, $self;
    weaken $live[-1];

    return $self;
}

sub dir { $_[0]{dir} }

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    my $path = "$self->{dir}/$name";
    open my $fh, '>', $path or croak "$path: $!";
    print $fh $content;
    close $fh;
    chmod $mode // 0644, $path;
    return $path;
}

# a port nothing listens on.  WA_PORT_SHARE=k/n (make test-matrix, which
# runs n suites at once): only ports p with (p >> 1) % n == k, so that a
# suite never takes the port another one just picked and has yet to bind.
# Not p % n: Linux hands out odd ports to bind(); and a cluster bus port
# (p + 10000) stays in its node's share.
sub free_port {
    my ($k, $n) = ($ENV{WA_PORT_SHARE} // '0/1') =~ m{^(\d+)/(\d+)$}
        or croak "WA_PORT_SHARE=$ENV{WA_PORT_SHARE}: k/n wanted";
    for (1 .. 1000) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1)
            or croak "no free port: $!";
        my $port = $s->sockport;
        close $s;
        return $port if ($port >> 1) % $n == $k;
    }
    croak "no free port in share $k/$n";
}

sub wait_port {
    my ($port, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) { close $s; return 1 }
        sleep 0.02;
    }
    return 0;
}

sub spawn {
    my ($self, $name, @cmd) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/$name.out";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pids}{$name} = $pid;
    return $pid;
}

sub stop {
    my ($self, $name, $sig) = @_;
    my $pid = delete $self->{pids}{$name} or return;
    kill $sig // 'TERM', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $w = waitpid($pid, WNOHANG);
        return 1 if $w == $pid || ($w == -1 && !kill 0, $pid);
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return 0;
}

sub alive {
    my ($self, $name) = @_;
    my $pid = $self->{pids}{$name} or return 0;
    return waitpid($pid, WNOHANG) == 0;
}

# a process's state letter in /proc (R, S, T for stopped, ...)
sub proc_state {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return '';
    my $stat = <$fh> // '';
    return $stat =~ /\) (\S) / ? $1 : '';
}

# SIGSTOP, returning once the kernel has stopped the process (kill only
# queues the signal): what it had written is then all it will write
sub freeze {
    my ($self, $pid) = @_;
    $pid = $self->{pids}{$pid} // $pid;
    kill 'STOP', $pid;
    $self->wait_for(sub { proc_state($pid) =~ /^[Tt]$/ })
        or croak "process $pid did not stop";
    return 1;
}

sub thaw {
    my ($self, $pid) = @_;
    kill 'CONT', $self->{pids}{$pid} // $pid;
}

# --- what the kernel holds ---------------------------------------------------

# bytes on their way to a local port, from /proc/net/tcp: the send queues
# of the sockets connected to it and the receive queues of its own side
sub tcp_queued {
    my ($port) = @_;
    local $_;                   # while (<$fh>) below
    my $hex = sprintf '%04X', $port;
    my $sum = 0;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (<$fh>) {
        my ($local, $remote, $st, $queues) = (split ' ')[1 .. 4];
        next unless defined $queues && $queues =~ /^([0-9A-F]+):([0-9A-F]+)$/;
        next if $st eq '0A';                    # a listening socket
        my ($tx, $rx) = (hex $1, hex $2);
        $sum += $tx if $remote =~ /:$hex$/;
        $sum += $rx if $local =~ /:$hex$/;
    }
    return $sum;
}

# a server's established connections on its port, and whether all it was
# sent on them has reached it: what it was sent, it has read
sub received_all {
    my ($port, $n) = @_;
    local $_;                   # while (<$fh>) below
    my $hex = sprintf '%04X', $port;
    my $in = 0;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (<$fh>) {
        my ($local, $st) = (split ' ')[1, 3];
        $in++ if $st eq '01' && $local =~ /:$hex$/;
    }
    return $in == $n && tcp_queued($port) == 0;
}

# connections to a listening port that its server has not accepted yet
sub accept_queue {
    my ($port) = @_;
    local $_;                   # while (<$fh>) below
    my $hex = sprintf '%04X', $port;
    open my $fh, '<', '/proc/net/tcp' or return -1;
    while (<$fh>) {
        my ($local, $st, $queues) = (split ' ')[1, 3, 4];
        return hex $1 if $st eq '0A' && $local =~ /:$hex$/
                         && $queues =~ /^[0-9A-F]+:([0-9A-F]+)$/;
    }
    return -1;
}

# --- redis -----------------------------------------------------------------

sub redis_port { $_[0]{redis_port} //= free_port() }

sub start_redis {
    my ($self, @extra) = @_;
    my $port = $self->redis_port;
    $self->spawn('redis', $self->{redis_bin}, '--port', $port,
                 '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
                 '--dir', $self->{dir}, '--daemonize', 'no', @extra);
    wait_port($port) or croak "redis-server did not start on $port";
    $self->acl_users if $self->{acl};
    return $port;
}

# acl => 1: the module and the worker each log in as the user of
# docs/redis.md, with the permissions written there and no other (the
# default user stays the tests' own, to look at what they did)
sub acl_rules {
    my ($self) = @_;
    my $doc = File::Spec->rel2abs(dirname(__FILE__) . '/../../docs/redis.md');
    open my $fh, '<', $doc or croak "$doc: $!";
    my %rules;
    local $_;
    while (<$fh>) {
        $rules{$1} = [ split ' ', $2 ] if /^ACL SETUSER (\S+) (.*)$/;
    }
    return \%rules;
}

# each user's rules with its password (written to redis-<user>-password);
# drop => { user => '+cmd' }: that user without the rule
sub acl_of {
    my ($self, %drop) = @_;
    my $rules = $self->acl_rules;
    my %of;
    for my $user (sort keys %$rules) {
        my $pw = "$user-password";
        $self->write_file("redis-$user-password", $pw, 0600);
        $of{$user} = [ map { $_ eq '>PASSWORD' ? ">$pw" : $_ }
                       grep { !$drop{$user} || $_ ne $drop{$user} }
                       @{ $rules->{$user} } ];
    }
    return \%of;
}

# acl_users(user => '+cmd'): the users again, that one without the rule
sub acl_users {
    my ($self, %drop) = @_;
    my $of = $self->acl_of(%drop);
    for my $user (sort keys %$of) {
        my $ok = $self->redis('ACL', 'SETUSER', $user, @{ $of->{$user} });
        croak "ACL SETUSER $user: $ok" unless ($ok // '') eq 'OK';
    }
}

# the users as redis-server's arguments: a node has them from its start
sub acl_args {
    my ($self) = @_;
    my $of = $self->acl_of;
    return map { ('--user', $_, @{ $of->{$_} }) } sort keys %$of;
}

sub stop_redis {
    my ($self, @how) = @_;
    $self->keep_streams;
    $self->stop('redis', @how);
}

sub redis {
    my ($self, @args) = @_;
    $self->keep_streams if grep { /^FLUSH(?:ALL|DB)$/i } @args;
    open my $fh, '-|', 'redis-cli', '-h', '127.0.0.1', '-p',
        $self->redis_port, '--json', @{ $self->{redis_auth} || [] }, @args
        or croak "redis-cli: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    return undef unless defined $out && length $out;
    my $v = eval { JSON::PP->new->allow_nonref->decode($out) };
    return $@ ? $out : $v;
}

# the entries of every stream of every database, to streams.jsonl in the
# test's directory, for the contract check at exit (redis_auth: what
# redis-cli needs to log in, for a test that sets a password)
sub keep_streams {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    # a cluster's nodes (t/lib/WaCluster.pm), or the test's one Redis
    for my $port (@{ $self->{cluster_ports} || [ $self->redis_port ] }) {
        next unless $self->{cluster_ports} ? $self->alive("redis-$port")
                                           : $self->alive('redis');
        local $self->{redis_port} = $port;
        $self->keep_streams_of;
    }
}

sub keep_streams_of {
    my ($self) = @_;
    # a Redis on a TLS port only, or gone: nothing to keep, nothing to say
    return unless wait_port($self->redis_port, 0.2);
    # a cluster's replica holds what its primary has
    my $role = $self->redis('ROLE');
    return if ref $role eq 'ARRAY' && $role->[0] ne 'master';
    my $info = $self->redis('INFO', 'keyspace') // '';
    my @dbs = $info =~ /^db(\d+):/mg;
    open my $out, '>>', "$self->{dir}/streams.jsonl" or croak "$!";
    for my $db (@dbs) {
        my @db = $db ? ('-n', $db) : ();
        my ($cursor, @keys) = (0);
        do {
            my $r = $self->redis(@db, 'SCAN', $cursor, 'TYPE',
                                 'stream', 'COUNT', 1000);
            last unless ref $r eq 'ARRAY';
            ($cursor, my $k) = @$r;
            push @keys, @$k;
        } while ($cursor ne '0');
        for my $key (@keys) {
            my $r = $self->redis(@db, 'XRANGE', $key, '-', '+');
            next unless ref $r eq 'ARRAY';
            print $out $JSON->encode({ stream => $key, id => $_->[0],
                                       fields => $_->[1] }), "\n"
                for @$r;
        }
    }
    close $out;
    $kept{"$self->{dir}/streams.jsonl"} = 1;
}

END {
    # $? is the script's exit status here: what runs below must not set it
    my $status = $?;
    for my $t (grep { defined } @live) {
        $t->keep_streams;
    }
    my @files = grep { -s } sort keys %kept;
    if (@files) {
        my $out = `$CONTRACT @{[ map { "--file $_" } @files ]} 2>&1`;
        if ($? != 0) {
            print STDERR map { "# contract: $_\n" } split /\n/, $out;
            $status ||= 1;
        }
    }
    $? = $status;
}

# entries of a stream as [ id, { field => value } ] pairs
sub stream {
    my ($self, $key) = @_;
    my $r = $self->redis('XRANGE', $key, '-', '+');
    return () unless ref $r eq 'ARRAY';
    return map { [ $_->[0], { @{ $_->[1] } } ] } @$r;
}

sub stream_events {
    my ($self, $key) = @_;
    return map { $_->[1] } $self->stream($key);
}

sub xlen {
    my ($self, $key) = @_;
    return $self->redis('XLEN', $key) // 0;
}

# a consumer group of a stream, as XINFO GROUPS gives it ({} if none)
sub group {
    my ($self, $stream, $group) = @_;
    my $g = $self->redis('XINFO', 'GROUPS', $stream);
    return {} unless ref $g eq 'ARRAY';
    # redis-cli --json speaks RESP3: groups come as maps
    my ($h) = grep { $_->{name} eq $group }
              map { ref $_ eq 'HASH' ? $_ : +{ @$_ } } @$g;
    return $h // {};
}

# entries a consumer of the group was given and has not acknowledged
sub pending_of {
    my ($self, $stream, $group, $consumer) = @_;
    my $r = $self->redis('XPENDING', $stream, $group);
    return 0 unless ref $r eq 'ARRAY' && ref $r->[3] eq 'ARRAY';
    my %by = map { @$_ } @{ $r->[3] };
    return $by{$consumer} // 0;
}

# the local ports of a process's connections to a port (its fds, matched
# to /proc/net/tcp by inode)
sub ports_of {
    my ($pid, $port) = @_;
    local $_;                   # while (<$fh>) below
    my %inode;
    for my $fd (glob "/proc/$pid/fd/*") {
        my $l = readlink $fd // next;
        $inode{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/;
    }
    my $hex = sprintf '%04X', $port;
    my @ports;
    open my $fh, '<', '/proc/net/tcp' or return ();
    while (<$fh>) {
        my @f = split ' ';
        next unless @f > 9 && $inode{ $f[9] } && $f[2] =~ /:$hex$/;
        push @ports, hex((split /:/, $f[1])[1]);
    }
    return @ports;
}

# a process of this test (a name or a pid) waits in Redis, in a blocking
# XREADGROUP on one of its connections (CLIENT LIST)
sub blocked_reader {
    my ($self, $who) = @_;
    my $pid = $self->{pids}{$who} // $who;
    my %mine = map { $_ => 1 } ports_of($pid, $self->redis_port);
    my $list = $self->redis('CLIENT', 'LIST') // '';
    return scalar grep { /\baddr=[\d.]+:(\d+)\b/ && $mine{$1}
                         && /\bflags=\S*b/ && /\bcmd=xreadgroup\b/ }
                  split /\n/, $list;
}

# Freezes the named workers while each waits in XREADGROUP with nothing in
# hand: the next entries are then handed to them, and they can apply none
# (a worker given a long --block-ms, so that its wait outlasts the case)
sub freeze_idle {
    my ($self, @names) = @_;
    for (1 .. 20) {
        $self->wait_for(sub { !grep { !$self->blocked_reader($_) } @names },
                        30) or return 0;
        $self->freeze($_) for @names;
        return 1 unless grep { !$self->blocked_reader($_) } @names;
        # one was between two reads: let it go back to waiting
        $self->thaw($_) for @names;
    }
    return 0;
}

# times Redis ran a command since it started (INFO commandstats)
sub calls {
    my ($self, $cmd) = @_;
    my $info = $self->redis('INFO', 'commandstats') // '';
    return $info =~ /^cmdstat_\Q$cmd\E:calls=(\d+)/m ? $1 : 0;
}

# --- nginx -----------------------------------------------------------------

sub port { $_[0]{port} //= free_port() }

sub nginx_conf {
    my ($self, %o) = @_;
    my $d = $self->{dir};
    my $redis = $o{redis} // '127.0.0.1:' . $self->redis_port;
    my $http = $o{http} // '';
    my $loc = $o{location} // '';
    my $server = $o{server} // '';
    my $main = $o{main} // '';
    # make test-asan: a new binary (USR2) keeps the sanitizer runtime
    $main .= "\nenv LD_PRELOAD;\nenv ASAN_OPTIONS;\nenv UBSAN_OPTIONS;"
        if $ENV{WA_NGINX_PRELOAD};
    my $timeout = $o{redis_timeout} // '3s';
    my $port = $self->port;
    my $daemon = $o{daemon} ? 'on' : 'off';
    my $workers = $o{workers} // 1;
    my $acl = $self->{acl} && $http !~ /whatsapp_redis_(?:user|password)/
        ? "\n    whatsapp_redis_user wa-ingest;"
          . "\n    whatsapp_redis_password_file $d/redis-wa-ingest-password;"
        : '';

    return <<"EOF";
load_module $self->{module};
daemon $daemon;
master_process on;
worker_processes $workers;
pid $d/nginx.pid;
error_log $d/error.log info;
$main
events { worker_connections 1024; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    client_max_body_size 4m;
    whatsapp_redis $redis;
    whatsapp_redis_timeout $timeout;$acl
    whatsapp_app_secret_file $d/secret;
    whatsapp_verify_token_file $d/token;
$http
    server {
        listen 127.0.0.1:$port;
        location = /webhook {
            whatsapp_webhook;
$loc
        }
        location = /wa-status {
            whatsapp_status;
        }
        location = /wa-metrics {
            whatsapp_metrics;
        }
        location = /wa-health {
            whatsapp_health;
        }
$server
    }
}
EOF
}

# what the nginx under test was configured with, as its -V says
sub nginx_V {
    my ($self) = @_;
    return $self->{nginx_V} //= `$self->{nginx} -V 2>&1`;
}

# a module of nginx's own: 'static' (built in), 'dynamic' or ''
sub nginx_has {
    my ($self, $module) = @_;
    return '' unless $self->nginx_V =~ /\s--with-\Q$module\E(=dynamic)?(?=\s)/;
    return $1 ? 'dynamic' : 'static';
}

# the main-context line that gives this nginx the named module of its own
# ('stream'): '' when built in, a load_module of its modules directory when
# built =dynamic (Debian's libnginx-mod-stream), undef when it has none
sub load_own {
    my ($self, $module) = @_;
    my $how = $self->nginx_has($module);
    return '' if $how eq 'static';
    return undef unless $how;
    my ($dir) = $self->nginx_V =~ /--modules-path=(\S+)/;
    my ($prefix) = $self->nginx_V =~ /--prefix=(\S+)/;
    $dir //= ($prefix // '/usr/local/nginx') . '/modules';
    my $so = "$dir/ngx_${module}_module.so";
    return -f $so ? "load_module $so;" : undef;
}

sub nginx_test {
    my ($self, $conf) = @_;
    $self->write_file('test.conf', $conf);
    local $ENV{LD_PRELOAD} = $ENV{WA_NGINX_PRELOAD}
        if $ENV{WA_NGINX_PRELOAD};
    my $out = `$self->{nginx} -t -p $self->{dir} -e $self->{dir}/test.log -c $self->{dir}/test.conf 2>&1`;
    return ($? >> 8, $out);
}

sub start_nginx {
    my ($self, %o) = @_;
    my $conf = $self->nginx_conf(%o);
    $self->write_file('nginx.conf', $conf);
    # make test-asan: the ASan runtime for nginx alone, not for perl
    local $ENV{LD_PRELOAD} = $ENV{WA_NGINX_PRELOAD}
        if $ENV{WA_NGINX_PRELOAD};
    if ($o{daemon}) {
        # a daemon, as in production: needed for binary upgrades (USR2)
        system($self->{nginx}, '-p', $self->{dir}, '-e',
               "$self->{dir}/error.log", '-c', "$self->{dir}/nginx.conf") == 0
            or croak "nginx did not start:\n" . $self->error_log;
        $self->wait_for(sub { -s "$self->{dir}/nginx.pid" });
        open my $fh, '<', "$self->{dir}/nginx.pid" or croak "no pid file";
        ($self->{pids}{nginx}) = <$fh> =~ /(\d+)/;
    } else {
        $self->spawn('nginx', $self->{nginx}, '-p', $self->{dir},
                     '-e', "$self->{dir}/error.log",
                     '-c', "$self->{dir}/nginx.conf");
    }
    unless (wait_port($self->port)) {
        croak "nginx did not start:\n" . $self->error_log;
    }
    # no_wait: a test of what happens while the link comes up
    $self->wait_log(qr/whatsapp redis: connected/) unless $o{no_wait};
    return $self->port;
}

sub reload_nginx {
    my ($self, %o) = @_;
    $self->write_file('nginx.conf', $self->nginx_conf(%o)) if %o;
    kill 'HUP', $self->{pids}{nginx};
}

sub stop_nginx { $_[0]->stop('nginx', $_[1] // 'QUIT') }

sub nginx_pid { $_[0]{pids}{nginx} }

sub error_log {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/error.log" or return '';
    local $/;
    return <$fh>;
}

# wait until the error log matches: the module logs state changes there
# (timeouts here and in wait_for are ceilings that catch a hang, generous
# for a busy machine: a case passes as soon as what it waits for is seen)
sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        return 1 if $self->error_log =~ $re;
        sleep 0.05;
    }
    return 0;
}

# how many lines of the error log match
sub log_count {
    my ($self, $re) = @_;
    return scalar(() = $self->error_log =~ /$re/g);
}

sub url {
    my ($self, $path) = @_;
    return 'http://127.0.0.1:' . $self->port . ($path // '/webhook');
}

# --- the worker --------------------------------------------------------------

# wa-relayd against this test's Redis; extra flags override the defaults
sub start_worker {
    my ($self, @flags) = @_;
    my $name = 'worker';
    my %o = (consumer => 'w1', @flags);
    $name = "worker-$o{consumer}";
    my @args = ('--redis', '127.0.0.1:' . $self->redis_port,
                '--log-file', "$self->{dir}/$name.log",
                '--stats-interval-ms', 500);
    push @args, '--redis-user', 'wa-relayd', '--redis-password-file',
        "$self->{dir}/redis-wa-relayd-password"
        if $self->{acl} && !exists $o{'redis-password-file'};
    push @args, "--$_", $o{$_} for sort keys %o;
    $self->spawn($name, File::Spec->rel2abs($self->{worker_bin}), @args);
    return $name;
}

# append to the outbox: fields as a list of pairs; the message may be a ref
sub outbox {
    my ($self, @kv) = @_;
    return ($self->outbox_batch(\@kv))[0];
}

# many entries in one call (one redis-cli): they arrive together, as fast as
# a service would add them, not at the pace of a process per entry
sub outbox_batch {
    my ($self, @entries) = @_;
    my @args;
    for my $e (@entries) {
        my @kv = @$e;
        my @fields;
        while (my ($k, $v) = splice @kv, 0, 2) {
            $v = JSON::PP->new->canonical->encode($v) if ref $v;
            push @fields, $k, $v;
        }
        push @args, scalar @fields, @fields;
    }
    # with partitions, the number's partition's outbox (outbox_key)
    my $key = $self->{outbox_key} // 'wa:outbox';
    my $ids = $self->redis('EVAL', <<'LUA', 1, $key, @args);
local ids, i = {}, 1
while i <= #ARGV do
    local n = tonumber(ARGV[i])
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*',
                               unpack(ARGV, i + 1, i + n))
    i = i + n + 1
end
return ids
LUA
    return ref $ids eq 'ARRAY' ? @$ids : ();
}

sub worker_log {
    my ($self, $consumer) = @_;
    open my $fh, '<', "$self->{dir}/worker-" . ($consumer // 'w1') . '.log'
        or return '';
    local $/;
    return <$fh>;
}

# poll until the sub returns true; its last value
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    my $v;
    while (time < $deadline) {
        return $v if $v = $cond->();
        sleep 0.05;
    }
    return $cond->();
}

# every group on the prefix's streams has acknowledged everything
sub drained {
    my ($self, $prefix, $group) = @_;
    $prefix //= 'wa';
    $group //= 'wa-relayd';
    for my $s (qw(messages statuses account)) {
        my $h = $self->group("$prefix:$s", $group);
        return 0 unless %$h;
        return 0 if $h->{pending} || ($h->{lag} // 1);
    }
    return 1;
}

sub hash {
    my ($self, $key) = @_;
    my $r = $self->redis('HGETALL', $key);
    return ref $r eq 'ARRAY' ? { @$r } : ref $r eq 'HASH' ? $r : {};
}

# --- the fake Meta -------------------------------------------------------------

sub sign {
    my ($secret, $body) = @_;
    return 'sha256=' . hmac_sha256_hex($body, $secret);
}

sub sign_sha1 {
    my ($secret, $body) = @_;
    return 'sha1=' . hmac_sha1_hex($body, $secret);
}

# POST a body signed like Meta signs it; headers can override or drop
# (undef value) the signature
sub post {
    my ($self, $body, %o) = @_;
    my %h = ('Content-Type' => 'application/json',
             'X-Hub-Signature-256' => sign($o{secret} // $self->{secret},
                                           $body));
    my $extra = $o{headers} || {};
    for my $k (keys %$extra) {
        if (defined $extra->{$k}) { $h{$k} = $extra->{$k} }
        else { delete $h{$k} }
    }
    return $self->{http}->request('POST', $self->url($o{path}),
                                  { headers => \%h, content => $body });
}

sub get {
    my ($self, $path) = @_;
    return $self->{http}->get($self->url($path));
}

# the status page's counters (JSON), summed over the webhook names
sub status_counters {
    my ($self) = @_;
    my $r = $self->get('/wa-status');
    return eval { JSON::PP->new->decode($r->{content}) } || {};
}

# Meta serialises compactly with non-ASCII as \uXXXX escapes
sub meta_json {
    my ($data) = @_;
    return $JSON->encode($data);
}

# every fixture case: [ file, case, body ] with the body as Meta sends it
sub fixtures {
    my ($self) = @_;
    my @cases;
    for my $file (sort glob "$self->{fixtures}/*.json") {
        open my $fh, '<', $file or croak "$file: $!";
        local $/;
        my $all = JSON::PP->new->utf8->decode(<$fh>);
        (my $name = $file) =~ s{.*/}{};
        for my $case (sort keys %$all) {
            push @cases, [ $name, $case, $all->{$case} ];
        }
    }
    return @cases;
}

sub DESTROY {
    my ($self) = @_;
    return unless $$ == $self->{owner};     # not in a forked client
    # stopping the servers reaps them, which sets $?: at exit, that would
    # become the script's exit status (a test's, the demo's) in its place
    local $?;
    $self->keep_streams if ${^GLOBAL_PHASE} ne 'DESTRUCT';
    for my $name (keys %{ $self->{pids} }) {
        $self->stop($name, 'TERM');
    }
}

1;
