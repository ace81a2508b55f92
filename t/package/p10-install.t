# The Debian packages, as a fleet installs them: apt-get install, nginx -t
# with the packaged load_module snippet and a site using the module, the
# packaged nginx and the service's own command line (as its user, with its
# EnvironmentFile: systemd is not PID 1 here), a signed webhook through
# them, then a purge that leaves only what the administrator put there.
#
# make test-deb runs it, as root, after make deb: it changes this machine's
# packages and /etc, and refuses to run where wa-relay is configured.
use strict;
use warnings;
use lib 't/lib';
use File::Spec;
use Test::More;
use WaTest;

plan skip_all => 'make deb && make test-deb run this (as root)'
    unless $ENV{WA_DEBS};
plan skip_all => 'installing packages needs root' if $> != 0;

my @pkgs = qw(libnginx-mod-http-whatsapp wa-relayd);
my @debs = map { File::Spec->rel2abs($_) }
           map { glob "$ENV{WA_DEBS}/${_}_*.deb" } @pkgs;
is scalar @debs, 2, 'two packages built' or BAIL_OUT("no packages in "
                                                     . $ENV{WA_DEBS});
for my $p (@pkgs) {
    BAIL_OUT("$p is installed: this test installs and purges it")
        if installed($p);
}
BAIL_OUT('/etc/wa-relay exists: this test would change a real '
         . 'configuration') if -e '/etc/wa-relay';

my $SITE = '/etc/nginx/sites-enabled/wa-relay-package-test.conf';
my $t = WaTest->new(packaged => 1);
my $d = $t->dir;
my $rport = $t->start_redis;
my $port = $t->port;
# whatever happened: the machine as it was, but for the system user
my $cleanup = sub {
    unlink $SITE;
    run('apt-get', 'purge', '-y', grep { installed($_) } @pkgs)
        if grep { installed($_) } @pkgs;
    system 'rm', '-rf', '/etc/wa-relay';
};
END { $cleanup->() if $cleanup }

# --- install ----------------------------------------------------------------
my $out = run('apt-get', 'install', '-y', '--no-install-recommends', @debs);
is $?, 0, 'apt-get install ./*.deb' or diag $out;
ok installed($_), "$_ installed" for @pkgs;

my $so = '/usr/lib/nginx/modules/ngx_http_whatsapp_module.so';
my $snippet = '/usr/share/nginx/modules-available/mod-http-whatsapp.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-whatsapp.conf';
ok -f $so, 'the module in nginx\'s modules directory';
is slurp($snippet), "load_module modules/ngx_http_whatsapp_module.so;\n",
   'its load_module snippet in modules-available';
is readlink($enabled), $snippet, 'enabled through modules-enabled';

my ($abi) = run('dpkg-query', '-W', '-f=${Depends}',
                'libnginx-mod-http-whatsapp') =~ /(nginx-abi-[\w.+~-]+)/;
ok $abi, "depends on the nginx ABI it was built for ($abi)";
like run('dpkg-query', '-W', '-f=${Provides}', 'nginx'), qr/\Q$abi\E/,
     'which the installed nginx provides';

my @files = grep { (-f || -l) && !-d } split /\n/,
            run('dpkg', '-L', @pkgs);
ok -x '/usr/sbin/wa-relayd', 'the worker';
like run('man', '-w', 'wa-relayd'), qr{/man8/wa-relayd\.8}, 'wa-relayd(8)';
my $unit = '/lib/systemd/system/wa-relayd.service';
ok -f $unit, 'the service';
my @pw = getpwnam 'wa-relay';
ok @pw && $pw[2] < 1000, "a system user wa-relay (uid $pw[2])";
my @st = stat '/etc/wa-relay';
is sprintf('%o:%s', $st[2] & 07777, scalar getgrgid $st[5]), '750:wa-relay',
   '/etc/wa-relay: its user may read in it, others may not list it';
ok !-e '/etc/systemd/system/multi-user.target.wants/wa-relayd.service',
   'installing enabled nothing';

$out = run('systemd-analyze', 'verify', $unit);
is $?, 0, 'systemd-analyze verify accepts the unit' or diag $out;
diag "systemd-analyze: $out" if $out =~ /\S/;

# --- configure, as an administrator would ------------------------------------
secret('/etc/wa-relay/app-secret', $t->{secret}, 'root');
secret('/etc/wa-relay/verify-token', $t->{token}, 'root');
secret('/etc/wa-relay/graph-token', 'package-test-token', 'wa-relay');
open my $fh, '>>', '/etc/wa-relay/wa-relayd.env' or die $!;
print $fh "WA_REDIS=127.0.0.1:$rport\nWA_CONSUMER=package-test\n",
    "WA_TOKEN_FILE=/etc/wa-relay/graph-token\nWA_STATS_INTERVAL_MS=500\n";
close $fh;

spew($SITE, <<"EOF2");
whatsapp_redis               127.0.0.1:$rport;
whatsapp_app_secret_file     /etc/wa-relay/app-secret;
whatsapp_verify_token_file   /etc/wa-relay/verify-token;

server {
    listen 127.0.0.1:$port;
    location = /webhook { whatsapp_webhook; }
    location = /wa-status { whatsapp_status; }
}
EOF2

$out = run('nginx', '-t');
is $?, 0, 'nginx -t: Debian\'s nginx.conf, the snippet and the site'
    or diag $out;

# the packaged nginx: the snippet and the site, its own pid and log
$t->write_file('nginx.conf', <<"EOF2");
include /etc/nginx/modules-enabled/*.conf;
pid $d/nginx.pid;
error_log $d/error.log info;
events {}
http {
    access_log off;
    include $SITE;
}
EOF2
$t->spawn('nginx', '/usr/sbin/nginx', '-g', 'daemon off;',
          '-c', "$d/nginx.conf");
ok WaTest::wait_port($port), 'the packaged nginx listens'
    or diag $t->error_log;
ok $t->wait_log(qr/whatsapp redis: connected/, 30), 'and reached Redis';

# the service's command line, user and environment, from the unit itself
my %u = unit($unit);
my @env = env_file($u{EnvironmentFile});
ok((grep { /^WA_REDIS=/ } @env), "the unit's EnvironmentFile read");
$t->spawn('wa-relayd', 'env', '-i', @env, 'setpriv',
          "--reuid=$u{User}", "--regid=$u{Group}", '--init-groups',
          '--no-new-privs', split ' ', $u{ExecStart});
ok $t->wait_for(sub { slurp("$d/wa-relayd.out") =~ /wa-relayd starting/ },
                10), "ExecStart ($u{ExecStart}) running as $u{User}"
    or diag slurp("$d/wa-relayd.out");
# env and setpriv exec: the pid spawned is the worker's
my $wpid = $t->{pids}{'wa-relayd'};
is((stat "/proc/$wpid")[4], (getpwnam $u{User})[2], 'as that user');

# --- a signed webhook through them -------------------------------------------
my %fx = map { ("$_->[0]/$_->[1]" => $_->[2]) } $t->fixtures;
my $r = $t->get("/webhook?hub.mode=subscribe&hub.verify_token=$t->{token}"
                . '&hub.challenge=31337');
is "$r->{status} $r->{content}", '200 31337', 'the challenge answered';
$r = $t->post(WaTest::meta_json($fx{'messages.json/text'}));
is $r->{status}, 200, 'a signed message: 200';
my ($e) = $t->stream_events('wa:messages');
is $e && $e->{msg_id},
   $fx{'messages.json/text'}{entry}[0]{changes}[0]{value}{messages}[0]{id},
   'the event in wa:messages';
ok $t->wait_for(sub { $t->drained }, 10), 'the worker applied it';
my $c = $t->hash('wa:contact:218374650192837:5511987650001');
is $c->{messages_in}, 1, 'derived state: the contact, one message in';
ok $c->{window_expires_at}, 'and its 24-hour window';

$t->stop('wa-relayd', 'TERM');
like slurp("$d/wa-relayd.out"), qr/wa-relayd stopped/,
     'SIGTERM: the worker drained and stopped';
$t->stop('nginx', 'QUIT');

# --- purge ------------------------------------------------------------------
unlink $SITE;
$out = run('apt-get', 'purge', '-y', @pkgs);
is $?, 0, 'apt-get purge' or diag $out;
ok !installed($_), "$_ gone" for @pkgs;
my @left = grep { -e || -l } @files;
is "@left", '', 'no file of either package left';
ok !-l $enabled && !-e "$enabled.removed", 'the modules-enabled link gone';
ok !-e '/var/log/wa-relay', 'the log directory gone';
opendir my $dh, '/etc/wa-relay' or die $!;
my @kept = sort grep { !/^\./ } readdir $dh;
is "@kept", 'app-secret graph-token verify-token',
   '/etc/wa-relay keeps only the secrets the administrator wrote';
diag 'the system user wa-relay stays, as Debian keeps system users';

done_testing;

sub run {
    my $cmd = join ' ', map { quotemeta } @_;
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    return scalar `$cmd 2>&1`;
}

sub installed {
    my ($p) = @_;
    return run('dpkg-query', '-W', '-f=${Status}', $p)
        =~ /^install ok installed/;
}

sub slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    return <$fh>;
}

sub spew {
    my ($path, $content) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh;
}

sub secret {
    my ($path, $value, $owner) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh "$value\n";
    close $fh;
    my @pw = getpwnam $owner or die "no user $owner";
    chown $pw[2], $pw[3], $path;
    chmod 0600, $path;
}

# the [Service] settings this test needs, as systemd would read them
sub unit {
    my ($path) = @_;
    my %u;
    for (split /\n/, slurp($path)) {
        $u{$1} = $2 if /^(ExecStart|User|Group|EnvironmentFile)=(.*)$/;
    }
    $u{EnvironmentFile} =~ s/^-//;
    return %u;
}

sub env_file {
    my ($path) = @_;
    return grep { /^\w+=/ } split /\n/, slurp($path);
}
